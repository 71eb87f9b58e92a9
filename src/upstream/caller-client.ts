/**
 * The client one session's loop talks through. With `UPSTREAM_API_KEY` the
 * callers' set stays empty and every call carries the operator's key; without
 * it (AUTH=upstream) each call carries the newest credential the upstream
 * accepted for that session, and a call it refuses is made again at once with
 * the next accepted one, so one revoked caller does not stall everyone else's
 * loop. Only when none is left does the refusal reach the loop.
 */
import type { UpstreamClient } from './client.ts';
import { CALLER_CREDENTIALS_MAX, type CallerCredentials, type UpstreamCredential } from './credential.ts';

/** Outcomes after which the credential used is dropped and the next one tried (per-key visibility answers 404 too). */
const REFUSED = new Set(['unauthorized', 'not-found']);

/** A view of `client` whose calls run on `callers` when it holds any (close() leaves the shared client open). */
export function callerClient(client: UpstreamClient, callers: CallerCredentials): UpstreamClient {
  async function onCallers<T extends { kind: string }>(run: (credential: UpstreamCredential | undefined) => Promise<T>): Promise<T> {
    // Bounded: the set only shrinks here, and a credential added meanwhile gets at most one more try.
    for (let attempt = 0; ; attempt++) {
      const credential = callers.current();
      const r = await run(credential);
      if (credential === undefined || !REFUSED.has(r.kind) || attempt >= CALLER_CREDENTIALS_MAX) return r;
      callers.drop(credential.digest);
      if (callers.size === 0) return r;
    }
  }
  // With none held (the operator's key: every loop's case then), a call goes straight through: no retry wrapper per call.
  return {
    changes: (sessionId, query, signal) => (callers.size === 0 ? client.changes(sessionId, query, signal) : onCallers((credential) => client.changes(sessionId, query, signal, credential))),
    status: (sessionId, signal) => (callers.size === 0 ? client.status(sessionId, signal) : onCallers((credential) => client.status(sessionId, signal, credential))),
    // Plain calls (the session list) name their own credential: passed through as they are.
    get: (endpoint, path, credential, signal) => client.get(endpoint, path, credential, signal),
    observe: (endpoint, outcome, seconds) => client.observe(endpoint, outcome, seconds),
    async close() {},
  };
}
