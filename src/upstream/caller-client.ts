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
/** Outcomes that show the upstream accepted the credential a call was made with. */
const ACCEPTED = new Set(['events', 'no-change', 'state', 'too-large']);

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
  // Once the upstream refused every caller's credential, the loop asks on with the last one refused (its answer is the
  // one to show), and takes it back among the session's credentials when the upstream accepts it again (a blip).
  async function onLastRefused<T extends { kind: string }>(credential: UpstreamCredential, run: (credential: UpstreamCredential) => Promise<T>): Promise<T> {
    const r = await run(credential);
    if (ACCEPTED.has(r.kind) && callers.size === 0 && callers.lastRefused === credential) callers.add(credential);
    return r;
  }
  // With none held, a call goes straight through with no wrapper: on the operator's key (every loop's case then).
  function on<T extends { kind: string }>(run: (credential: UpstreamCredential | undefined) => Promise<T>): Promise<T> {
    if (callers.size > 0) return onCallers(run);
    const last = callers.lastRefused;
    return last === undefined ? run(undefined) : onLastRefused(last, run);
  }
  return {
    changes: (sessionId, query, signal) => on((credential) => client.changes(sessionId, query, signal, credential)),
    status: (sessionId, signal) => on((credential) => client.status(sessionId, signal, credential)),
    // Plain calls (the session list) name their own credential: passed through as they are.
    get: (endpoint, path, credential, signal) => client.get(endpoint, path, credential, signal),
    observe: (endpoint, outcome, seconds) => client.observe(endpoint, outcome, seconds),
    async close() {},
  };
}
