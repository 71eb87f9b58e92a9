/**
 * AUTH=upstream (CONTRACT.md section 4, "Upstream keys"): a caller brings its
 * own upstream key, as it would call the upstream, and the upstream judges it
 * for each session asked (src/http/upstream-verdicts.ts). An accepted caller
 * reads the shared loop; its grant expires with the verdict and is renewed
 * with the upstream, so a key revoked there stops reading within the cache
 * lifetime.
 */
import { ForbiddenError, SessionNotFoundError, UnauthorizedError, UpstreamUnavailableError } from '../errors.ts';
import type { Stats } from '../metrics.ts';
import type { UpstreamClient } from '../upstream/client.ts';
import { upstreamCredential, type UpstreamCredential } from '../upstream/credential.ts';
import { presentedBearer, type Authorizer, type Credentials, type Grant } from './auth.ts';
import { VerdictCache, type CheckResult } from './upstream-verdicts.ts';
import { boundedAll } from './bounded-all.ts';

/** Longest key accepted (bytes), as for UPSTREAM_API_KEY; longer ones are refused before any upstream call. */
export const MAX_KEY_LENGTH = 4096;
/** Checks one request runs at once (a multi-session stream of up to 1000 sessions must not fire 1000 calls together). */
export const CHECKS_PER_REQUEST_CONCURRENCY = 8;
/** After a renewal the upstream could not answer (ms): the stream goes on and is checked again this much later. */
export const RENEW_RETRY_MS = 5000;
/** The stream error a refused renewal ends an open stream with. */
export const ACCESS_REVOKED = 'access_revoked';

// Printable ASCII without spaces: anything else cannot be a key, and must never reach a header.
const KEY_SHAPE = /^[\x21-\x7e]+$/;

export interface UpstreamKeyOptions {
  client: UpstreamClient;
  /** AUTH_UPSTREAM_CACHE_SECONDS. */
  cacheSeconds: number;
  /** UPSTREAM_AUTH_HEADER: callers may send their key raw there, and it is sent upstream there. */
  keyHeader: string | undefined;
  stats: Stats;
}

function assertKeyShape(key: string): void {
  if (key.length > MAX_KEY_LENGTH) throw new UnauthorizedError('key too long');
  if (!KEY_SHAPE.test(key)) throw new UnauthorizedError('key malformed: printable ASCII without spaces expected');
}

/**
 * The caller's key as the upstream expects it: from the UPSTREAM_AUTH_HEADER
 * header, `Authorization: Bearer`, or `access_token` (EventSource), sent on in
 * the configured header (raw) or as `Authorization: Bearer`. Undefined when
 * the request carries none; a malformed one is a 401.
 */
export function callerCredential(credentials: Credentials, keyHeader: string | undefined): UpstreamCredential | undefined {
  let key: string | undefined;
  if (keyHeader !== undefined && credentials.keyHeader !== undefined && credentials.keyHeader !== '') key = credentials.keyHeader.trim();
  else key = presentedBearer(credentials);
  if (key === undefined && credentials.authorization !== undefined) throw new UnauthorizedError('Authorization header must be "Bearer <key>"');
  if (key === undefined) return undefined;
  assertKeyShape(key);
  return keyHeader !== undefined ? upstreamCredential(keyHeader, key) : upstreamCredential('authorization', `Bearer ${key}`);
}

/** A 401 refuses the key itself, for every session: the request's answer, whatever the other sessions would say. */
const refusesTheKey = (r: CheckResult) => r.kind === 'refused' && r.status === 401;

/** The error a refused request gets: the upstream's own code (401, 403, 404), for one session or several. */
function refusalError(sessionIds: readonly string[], results: readonly CheckResult[]): Error {
  const refused = results.flatMap((r, i) => (r.kind === 'refused' ? [{ status: r.status, id: sessionIds[i]! }] : []));
  if (refused.some((r) => r.status === 401)) return new UnauthorizedError('the sessions API did not accept this key (401)');
  if (sessionIds.length === 1) {
    const { status, id } = refused[0]!;
    return status === 404 ? new SessionNotFoundError(id) : new ForbiddenError(`the sessions API refused this key for session ${JSON.stringify(id)} (403)`);
  }
  // As the upstream, a session this key may not see and one that does not exist look alike.
  if (refused.length === sessionIds.length && refused.every((r) => r.status === 404)) return new SessionNotFoundError(sessionIds);
  return new ForbiddenError(`the sessions API refused this key for ${refused.length} of the ${sessionIds.length} sessions asked for`);
}

/**
 * `checking`, or once `ms` passed without its answer the refusals already in (the request's answer), else an
 * unavailable upstream: the checks go on, their verdicts are cached, and a later ask of the same key joins them.
 * Until 7 Dec 2026 a silent check held a stream's first byte for its whole timeout (~10 s, an audit measured).
 */
function withinGrace(checking: Promise<CheckResult[]>, ms: number, refusedSoFar: () => CheckResult[] | null): Promise<CheckResult[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<CheckResult[]>((resolve, reject) => {
    timer = setTimeout(() => {
      const refused = refusedSoFar();
      if (refused !== null) resolve(refused);
      else reject(new UpstreamUnavailableError(`could not check the key: no answer within ${ms} ms yet`, 1));
    }, ms);
  });
  // Settled later, its outcome is the verdict cache's: never an unhandled rejection.
  checking.catch(() => undefined);
  return Promise.race([checking, late]).finally(() => clearTimeout(timer));
}

/** The AUTH=upstream authorizer, and the verdict cache behind it. */
export function createUpstreamKeyAuthorizer(opts: UpstreamKeyOptions): Authorizer {
  const { stats } = opts;
  const verdicts = new VerdictCache({ client: opts.client, ttlMs: opts.cacheSeconds * 1000, stats });
  const countRefusal = (status: number) => (stats.upstreamAuthRefusals[String(status)] = (stats.upstreamAuthRefusals[String(status)] ?? 0) + 1);
  // A key the upstream refuses outright (401) is not checked for the rest of the sessions: a junk key on a stream of
  // 100 sessions cost 100 upstream calls, now at most CHECKS_PER_REQUEST_CONCURRENCY.
  // `soFar` (when given) gets each session's result as it comes, at its index: what a grace that ran out goes by.
  const checkAll = (credential: UpstreamCredential, sessionIds: readonly string[], soFar?: CheckResult[]) =>
    boundedAll(
      sessionIds.map((id, i) => ({ id, i })),
      CHECKS_PER_REQUEST_CONCURRENCY,
      async ({ id, i }) => {
        const r = await verdicts.check(credential, id);
        if (soFar !== undefined) soFar[i] = r;
        return r;
      },
      refusesTheKey,
    );
  const earliest = (results: readonly CheckResult[]) => Math.min(...results.map((r) => (r.kind === 'accepted' ? r.expiresAtMs : Infinity)));

  return async (credentials, sessionIds, options): Promise<Grant> => {
    const credential = callerCredential(credentials, opts.keyHeader);
    if (credential === undefined) {
      countRefusal(401);
      throw new UnauthorizedError(`an upstream key is required (Authorization: Bearer${opts.keyHeader ? `, ${opts.keyHeader}` : ''} or ?access_token=)`);
    }
    const scope = { kind: 'upstream', credential } as const;
    // No session named (a route that lists): the upstream judges the key on the call made with it.
    if (sessionIds.length === 0) return { expiresAtMs: undefined, scope, upstreamCredential: credential };
    const soFar = new Array<CheckResult>(sessionIds.length);
    const checking = checkAll(credential, sessionIds, soFar);
    // A refusal already in when the grace runs out is the answer (a 401 or 403 does not wait on another session's silence).
    const refusedSoFar = () => (soFar.some((r) => r.kind === 'refused') ? soFar : null);
    const results = await (options?.judgeWithinMs === undefined ? checking : withinGrace(checking, options.judgeWithinMs, refusedSoFar));
    if (results.some((r) => r.kind === 'refused')) {
      const err = refusalError(sessionIds, results);
      countRefusal(err instanceof UnauthorizedError ? 401 : err instanceof ForbiddenError ? 403 : 404);
      throw err;
    }
    const unavailable = results.flatMap((r) => (r.kind === 'unavailable' ? [r] : []));
    if (unavailable.length > 0) {
      // The longest wait any session's answer asked for, and whether the upstream asked for it.
      const asked = unavailable.filter((r) => r.retryAfterFromUpstream);
      const wait = asked.length > 0 ? Math.max(...asked.map((r) => r.retryAfterSeconds)) : unavailable[0]!.retryAfterSeconds;
      throw new UpstreamUnavailableError(`could not check the key: ${unavailable[0]!.reason}`, wait, { retryAfterFromUpstream: asked.length > 0 });
    }
    const renew = async (): Promise<number | { error: string }> => {
      const again = await checkAll(credential, sessionIds);
      const refused = again.find((r) => r.kind === 'refused');
      if (refused !== undefined) {
        countRefusal(refused.status);
        return { error: ACCESS_REVOKED };
      }
      // An outage is not a refusal: the stream goes on and asks again shortly.
      if (again.some((r) => r.kind === 'unavailable')) return Date.now() + RENEW_RETRY_MS;
      return earliest(again);
    };
    return { expiresAtMs: earliest(results), renew, scope, upstreamCredential: credential };
  };
}
