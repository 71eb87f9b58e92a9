/**
 * Subscriber tokens (CONTRACT.md section 4): a JWT from the `Authorization`
 * header, the `access_token` query parameter or the cookie AUTH_COOKIE_NAME,
 * signed with HS256 (AUTH_JWT_SECRET) or by an identity provider whose keys
 * are published at AUTH_JWKS_URL (RS256, ES256, EdDSA). jose does every JOSE
 * step (parsing, algorithm checks, key selection, JWKS cache and cooldown);
 * this module only picks the key source and reads the sessions claim.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { compactVerify, createLocalJWKSet, createRemoteJWKSet, customFetch, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwksCache, jwtVerify, type JWKSCacheInput, type JSONWebKeySet, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { parse as parseCookies } from 'hono/utils/cookie';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';
import { presentedBearer, type Authorizer, type Credentials, type GrantScope } from './auth.ts';
import type { Config } from '../config.ts';
import type { Logger } from 'pino';

/** Clock skew tolerated on `nbf` and `iat` (seconds); `exp` is enforced to the second (see below). */
export const JWT_CLOCK_TOLERANCE_SECONDS = 5;
/** Longest token accepted (bytes); longer ones are refused before any crypto. */
export const MAX_TOKEN_LENGTH = 8192;
/** Algorithms accepted with AUTH_JWKS_URL keys: pinned, so `alg: none` and HS/RS confusion never reach a key. */
export const JWKS_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
/** Longest wait for the JWKS endpoint (ms): a token whose key it would bring is refused with 401 past it. */
export const JWKS_TIMEOUT_MS = 5_000;
/**
 * Largest key set read (bytes; a real one is a few KB). A bigger answer is a failed fetch, cut off before it is
 * held whole: until 6 Dec 2026 a 400 MB answer took the process to 2.7 GB and stalled it for 33 s (helper audit).
 */
export const JWKS_MAX_BYTES = 1024 * 1024;
/**
 * Least time between two fetches of the key set for an unknown `kid` (ms) when AUTH_JWKS_COOLDOWN_SECONDS is not
 * set. A token that names a kid the set lacks waits for the next fetch at most this long, so a key rotated in just
 * after a fetch is accepted within a second, not refused (jose's own default, 30 s, refused it for that long).
 */
export const DEFAULT_JWKS_COOLDOWN_MS = 1_000;
/** After a failed fetch (endpoint down, hanging, garbage), how long tokens are answered from the last keys without asking it (ms). */
export const JWKS_FAILED_REST_MS = 30_000;
/**
 * The same rest before any key set was fetched (ms): tokens are refused (401) at once meanwhile, rather than each
 * waiting JWKS_TIMEOUT_MS on an endpoint that hangs; shorter, as no token at all can be accepted until it answers.
 */
export const JWKS_FAILED_REST_NO_KEYS_MS = 5_000;
/** Longest a token with an unknown kid waits for the next fetch (ms); with a longer cooldown left it is refused at once. */
export const JWKS_MAX_WAIT_MS = 5_000;
/** Kids remembered as absent from the current key set at most (a flood of made-up kids cannot grow it further). */
const JWKS_ABSENT_KIDS_MAX = 10_000;
/** How long fetched keys count as fresh (ms) when AUTH_JWKS_CACHE_SECONDS is not set (jose's default). */
export const DEFAULT_JWKS_CACHE_MAX_AGE_MS = 10 * 60_000;
/** The cookie that may carry the token when AUTH_COOKIE_NAME is not set. */
export const DEFAULT_COOKIE_NAME = 'pollcast_token';
/** The claim listing a token's sessions when AUTH_JWT_SESSIONS_CLAIM is not set. */
export const DEFAULT_SESSIONS_CLAIM = 'sessions';

/** How tokens are checked. At least one of `secret` and `jwksUrl`. */
export interface TokenOptions {
  /** HS256 secret (AUTH_JWT_SECRET). */
  secret?: string | undefined;
  /** The identity provider's key set (AUTH_JWKS_URL). */
  jwksUrl?: string | undefined;
  /** Required `iss` (AUTH_JWT_ISSUER). */
  issuer?: string | undefined;
  /** Required `aud` (AUTH_JWT_AUDIENCE). */
  audience?: string | undefined;
  /** Least time between two JWKS fetches caused by an unknown `kid` (AUTH_JWKS_COOLDOWN_SECONDS, in ms): a flood of made-up kids costs one fetch per period. */
  jwksCooldownMs?: number | undefined;
  /** How long fetched keys count as fresh (AUTH_JWKS_CACHE_SECONDS, in ms). */
  jwksCacheMaxAgeMs?: number | undefined;
  /** The claim holding the session ids (AUTH_JWT_SESSIONS_CLAIM). */
  sessionsClaim?: string | undefined;
  /** The cookie that may carry the token (AUTH_COOKIE_NAME). */
  cookieName?: string | undefined;
  /** Where the JWKS endpoint's failures and recoveries are said (once each). */
  log?: Logger | undefined;
}

/** A token that passed every check. */
export interface VerifiedToken {
  /** `exp` in ms since the epoch (in the future). */
  expiresAtMs: number;
  /** Its sessions claim, as given (checked to be strings, not checked to cover anything). */
  sessions: string[] | undefined;
}

/** Checks tokens against the configured keys. */
export interface TokenVerifier {
  /** Verifies a token; throws UnauthorizedError (401) when it is not valid. */
  verify(token: string): Promise<VerifiedToken>;
  /** True when `token` is a valid pollcast token. */
  isValid(token: string): Promise<boolean>;
  /**
   * True when `token` is a subscriber token, valid or not, never to be
   * forwarded upstream nor checked there as a key: it carries pollcast's own
   * signature (expired, short of a claim), or its signature could not be
   * checked and it names AUTH_JWT_ISSUER or AUTH_JWT_AUDIENCE (with neither
   * set: the key set that would check it cannot be fetched).
   */
  isOurs(token: string): Promise<boolean>;
  /** The cookie name tokens may arrive in. */
  readonly cookieName: string;
}

type KeySource = Parameters<typeof jwtVerify>[1];

/**
 * The JWKS endpoint could not be asked (down, hanging, resting after a failure) and the keys it gave before, if
 * any, lack the token's: no verdict on the token, which may be signed by a key rotated in meanwhile.
 */
class KeySetUnavailable extends Error {
  constructor(cause: unknown) {
    super('the key set could not be fetched', { cause });
  }
}

/** fetch for jose's key set reads: an answer's body is read here, at most JWKS_MAX_BYTES of it. */
async function boundedJwksFetch(url: string, init: RequestInit): Promise<Response> {
  const res = await fetch(url, init);
  const tooLarge = () => new Error(`the key set is larger than ${JWKS_MAX_BYTES} bytes`);
  // Not a key set (jose refuses anything but a 200): its body is not read at all.
  if (res.status !== 200 || res.body === null) {
    await res.body?.cancel().catch(() => undefined);
    return new Response(null, { status: res.status });
  }
  if (Number(res.headers.get('content-length')) > JWKS_MAX_BYTES) {
    await res.body.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  // Leaving the loop early cancels the body (the connection is not read to its end).
  for await (const chunk of res.body) {
    size += chunk.byteLength;
    if (size > JWKS_MAX_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return new Response(Buffer.concat(chunks), { status: 200, headers: res.headers });
}

/**
 * The JWKS key source: jose's remote set (cache, timeout, one fetch shared by
 * concurrent tokens), and, when the endpoint cannot be reached, the keys it
 * last fetched: known keys keep working, unknown ones are refused. A token
 * whose kid the set lacks makes it fetched again, at most once per
 * `cooldownMs`: one that comes sooner waits for that fetch instead of being
 * refused, so a rotation is seen at once and a flood of made-up kids costs one
 * fetch per cooldown.
 */
function jwksKeys(url: string, cooldownMs: number, cacheMaxAgeMs: number, log: Logger | undefined): KeySource {
  // The endpoint's origin only: a path or query may hold what a log should not.
  const where = new URL(url).origin;
  // Since a failed fetch: the last successful fetch's time then (jose's `uat`), to tell a new fetch from the cache.
  let down: false | { uat: number | undefined } = false;
  // jose records each successful fetch's time here (`uat`, ms since the epoch): the cooldown counts from it.
  const fetched: JWKSCacheInput = {};
  const remote = createRemoteJWKSet(new URL(url), { cooldownDuration: cooldownMs, cacheMaxAge: cacheMaxAgeMs, timeoutDuration: JWKS_TIMEOUT_MS, [jwksCache]: fetched, [customFetch]: boundedJwksFetch });
  let failedAtMs = Number.NEGATIVE_INFINITY;
  let failure: unknown;
  let lastSet: { jwks: JSONWebKeySet; keys: ReturnType<typeof createLocalJWKSet> } | undefined;
  const lastKeys = (jwks: JSONWebKeySet) => {
    if (lastSet?.jwks !== jwks) lastSet = { jwks, keys: createLocalJWKSet(jwks) };
    return lastSet.keys;
  };
  const ask: KeySource = async (header, token) => {
    const last = remote.jwks();
    // After a failed fetch the endpoint rests: tokens are answered from the last set at once, rather than each
    // waiting up to JWKS_TIMEOUT_MS on an endpoint that is down.
    if (last !== undefined && performance.now() - failedAtMs < JWKS_FAILED_REST_MS) return fromLast(last, header, token);
    if (last === undefined && performance.now() - failedAtMs < JWKS_FAILED_REST_NO_KEYS_MS) throw new KeySetUnavailable(failure);
    try {
      const key = await remote(header, token);
      // Recovered once a fetch succeeded since the failure (not when the cache answered without asking).
      if (down !== false && fetched.uat !== down.uat) {
        log?.info({ jwks: where }, 'JWKS endpoint answers again');
        down = false;
      }
      return key;
    } catch (err) {
      // No matching key is a verdict on the token; anything else is the fetch failing (down, timeout, bad answer).
      if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) throw err;
      if (down === false) log?.warn({ jwks: where, err: (err as Error).message, keysKnown: last !== undefined }, 'JWKS endpoint cannot be fetched: tokens signed by keys already fetched keep working, others are refused (401) until it answers');
      down = { uat: fetched.uat };
      failedAtMs = performance.now();
      failure = err;
      if (last === undefined) throw new KeySetUnavailable(err);
      return fromLast(last, header, token);
    }
  };
  // The last keys fetched, while the endpoint cannot be asked: a kid they lack gets no verdict.
  const fromLast = async (last: JSONWebKeySet, ...args: Parameters<ReturnType<typeof createLocalJWKSet>>) => {
    try {
      return await lastKeys(last)(...args);
    } catch (err) {
      throw err instanceof joseErrors.JWKSNoMatchingKey ? new KeySetUnavailable(failure) : err;
    }
  };
  // Kids that a set fetched after a token with them arrived did not hold: refused at once while that set stands,
  // so one request that asks twice (as a token, then "is it ours?") or a run of the same foreign kid waits once.
  let absent: { uat: number | undefined; kids: Set<string> } = { uat: undefined, kids: new Set() };
  const markAbsent = (kid: string) => {
    if (absent.uat !== fetched.uat) absent = { uat: fetched.uat, kids: new Set() };
    if (absent.kids.size < JWKS_ABSENT_KIDS_MAX) absent.kids.add(kid);
  };
  const knownAbsent = (kid: string) => absent.uat === fetched.uat && absent.kids.has(kid);
  return async (header, token) => {
    const seen = fetched.uat;
    const kid = typeof header.kid === 'string' ? header.kid : '';
    try {
      return await ask(header, token);
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey) || performance.now() - failedAtMs < JWKS_FAILED_REST_MS) throw err;
      // A set fetched since this token came (its own fetch, or one it shared) is the verdict.
      if (fetched.uat !== seen) markAbsent(kid);
      // The set predates this token and was fetched less than a cooldown ago: it may predate a rotation, so the
      // token waits for the next fetch (shared with the tokens waiting with it through jose's pending fetch) and
      // asks once more. Not for a kid a later set already lacked, nor longer than JWKS_MAX_WAIT_MS; the timer
      // never holds the process open, and may fire a little early on the wall clock jose counts on.
      const waitMs = () => (fetched.uat ?? 0) + cooldownMs - Date.now() + 5;
      if (fetched.uat !== seen || knownAbsent(kid) || !remote.coolingDown || waitMs() > JWKS_MAX_WAIT_MS) throw err;
      for (let i = 0; i < 3 && remote.coolingDown; i++) await sleep(Math.min(JWKS_MAX_WAIT_MS, Math.max(1, waitMs())), undefined, { ref: false });
      try {
        return await ask(header, token);
      } catch (again) {
        if (again instanceof joseErrors.JWKSNoMatchingKey) markAbsent(kid);
        throw again;
      }
    }
  };
}

/**
 * Verifies `token` with the key set. Where several of its keys match the token (no `kid` while two keys of its
 * algorithm are published, as during a rotation, or one `kid` listed twice), jose hands them back to be tried one by
 * one (`JWKSMultipleMatchingKeys`); until 7 Dec 2026 such a token was refused (401).
 */
async function verifyWithKeySet(token: string, keys: KeySource, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, keys, options)).payload;
  } catch (err) {
    if (!(err instanceof joseErrors.JWKSMultipleMatchingKeys)) throw err;
    // A key that cannot verify it (its signature does not match, or jose refuses the key itself: a weak RSA key, say)
    // gives way to the next; a claim the token fails (exp, iss, aud) fails it whatever key signed it.
    let last: unknown = new joseErrors.JWSSignatureVerificationFailed();
    for await (const key of err) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (other) {
        if (other instanceof joseErrors.JWTExpired || other instanceof joseErrors.JWTClaimValidationFailed) throw other;
        last = other;
      }
    }
    throw last;
  }
}

/** The token of a request: `Authorization: Bearer`, else `access_token`, else the cookie; undefined when none. */
export function tokenFrom(credentials: Credentials, cookieName: string): string | undefined {
  const presented = presentedBearer(credentials);
  if (presented !== undefined) return presented;
  const fromCookie = cookieToken(credentials.cookie, cookieName);
  if (fromCookie === undefined && credentials.authorization !== undefined) throw new UnauthorizedError('Authorization header must be "Bearer <token>"');
  return fromCookie;
}

/** The token in the cookie `cookieName` of a raw Cookie header, or undefined. */
export function cookieToken(cookie: string | undefined, cookieName: string): string | undefined {
  if (cookie === undefined || cookie === '') return undefined;
  const value = parseCookies(cookie, cookieName)[cookieName];
  return value === undefined || value === '' ? undefined : value;
}

/** True when the request's credential would come from the cookie (no bearer header, no query token): a browser sends it on its own. */
export function credentialFromCookie(credentials: Credentials, cookieName: string): boolean {
  if (presentedBearer(credentials) !== undefined) return false;
  return cookieToken(credentials.cookie, cookieName) !== undefined;
}

/** Creates the verifier for `options` (at least a secret or a JWKS URL). */
export function createTokenVerifier(options: TokenOptions): TokenVerifier {
  const secret = options.secret === undefined ? undefined : new TextEncoder().encode(options.secret);
  const jwks = options.jwksUrl === undefined ? undefined : jwksKeys(options.jwksUrl, options.jwksCooldownMs ?? DEFAULT_JWKS_COOLDOWN_MS, options.jwksCacheMaxAgeMs ?? DEFAULT_JWKS_CACHE_MAX_AGE_MS, options.log);
  if (secret === undefined && jwks === undefined) throw new Error('createTokenVerifier needs a secret or a JWKS URL');
  const claimName = options.sessionsClaim ?? DEFAULT_SESSIONS_CLAIM;
  const base: JWTVerifyOptions = { clockTolerance: JWT_CLOCK_TOLERANCE_SECONDS, requiredClaims: ['exp'] };
  if (options.issuer !== undefined) base.issuer = options.issuer;
  if (options.audience !== undefined) base.audience = options.audience;

  // The header picks the key source only; jose then checks the algorithm against the pinned list of that source,
  // so an HS256 token never meets a public key and an RS256 one never the secret.
  const check = async (token: string): Promise<JWTPayload> => {
    const { alg } = decodeProtectedHeader(token);
    if (alg === 'HS256' && secret !== undefined) return (await jwtVerify(token, secret, { ...base, algorithms: ['HS256'] })).payload;
    if (jwks !== undefined && alg !== 'HS256') return verifyWithKeySet(token, jwks, { ...base, algorithms: [...JWKS_ALGORITHMS] });
    throw new UnauthorizedError(`access token algorithm ${JSON.stringify(String(alg).slice(0, 20))} is not accepted`);
  };
  // Whether the token is signed with the secret under another HMAC algorithm than HS256 (HS384, HS512): not accepted,
  // yet pollcast's all the same, and never to be sent upstream (where it would help guess the secret).
  const signedWithSecret = async (token: string): Promise<boolean> => {
    if (secret === undefined) return false;
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      return false;
    }
    if (alg !== 'HS384' && alg !== 'HS512') return false;
    return compactVerify(token, secret, { algorithms: [alg] }).then(() => true, () => false);
  };
  const named = options.issuer !== undefined || options.audience !== undefined;
  // Whether an unverified token names pollcast as its issuer or audience (only those configured count).
  const namesUs = (token: string): boolean => {
    let payload: JWTPayload;
    try {
      payload = decodeJwt(token);
    } catch {
      return false;
    }
    if (options.issuer !== undefined && payload.iss === options.issuer) return true;
    const { aud } = payload;
    return options.audience !== undefined && (aud === options.audience || (Array.isArray(aud) && aud.includes(options.audience)));
  };
  const verify = async (token: string): Promise<VerifiedToken> => {
    if (token.length > MAX_TOKEN_LENGTH) throw new UnauthorizedError('access token too long');
    let payload: JWTPayload;
    try {
      payload = await check(token);
    } catch (err) {
      throw tokenRefusal(err);
    }
    const exp = payload.exp!;
    // exp is enforced to the second: a stream is closed at exp, and its reconnect must not be let in
    // for the skew tolerance (which stays for nbf), or a reconnect loop would run until exp + tolerance.
    if (exp * 1000 <= Date.now()) throw new UnauthorizedError('access token expired');
    // jose checks `iat` against the clock only with a maximum age, which pollcast does not set.
    if (typeof payload.iat === 'number' && payload.iat - JWT_CLOCK_TOLERANCE_SECONDS > Date.now() / 1000) throw new UnauthorizedError('access token issued in the future ("iat")');
    const sessions = payload[claimName];
    // A claim that is there but is not a list of ids makes the token malformed (401: get a new one), where a token
    // without it is valid and grants no session (403).
    if (sessions !== undefined && !(Array.isArray(sessions) && sessions.every((s) => typeof s === 'string'))) {
      throw new UnauthorizedError(`access token's "${claimName}" claim must be an array of session ids`);
    }
    return { expiresAtMs: exp * 1000, sessions };
  };
  return {
    verify,
    isValid: (token) => verify(token).then(() => true, () => false),
    isOurs: async (token) => {
      if (token.length > MAX_TOKEN_LENGTH || token.split('.').length !== 3) return false;
      try {
        await check(token);
        return true;
      } catch (err) {
        // jose checks the claims only once the signature is verified. Unverified, a token is taken for ours when it
        // names our issuer or audience (with either set, every token of ours does: a key not yet published signed
        // it); with neither set, when no key set can say otherwise (the endpoint down): better refused than sent
        // upstream. A foreign JWT (an upstream key of another issuer) is never refused for the endpoint's outage.
        return err instanceof joseErrors.JWTExpired || err instanceof joseErrors.JWTClaimValidationFailed || (named ? namesUs(token) : err instanceof KeySetUnavailable) || (await signedWithSecret(token));
      }
    },
    cookieName: options.cookieName ?? DEFAULT_COOKIE_NAME,
  };
}

/** The 401 for a failed verification; the message names the check, never the token. */
function tokenRefusal(err: unknown): UnauthorizedError {
  if (err instanceof UnauthorizedError) return err;
  if (err instanceof joseErrors.JWTExpired) return new UnauthorizedError('access token expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    // A token without exp would be valid forever: a leaked one could never be shut out short of rotating the key.
    if (err.claim === 'exp' && err.reason === 'missing') return new UnauthorizedError('access token has no exp claim');
    return new UnauthorizedError(`access token not valid: ${err.claim} check failed`);
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return new UnauthorizedError('access token algorithm is not accepted');
  if (err instanceof joseErrors.JWKSNoMatchingKey) return new UnauthorizedError('access token signed by an unknown key');
  if (err instanceof KeySetUnavailable) return new UnauthorizedError('access token signed by a key that cannot be checked now (the key set cannot be fetched)');
  // Everything else (bad signature, malformed token, the JWKS endpoint down for an unknown key) is the same 401:
  // an unverifiable token is the caller's problem to renew, never a 500.
  return new UnauthorizedError('access token invalid');
}

/** The scope a verified token grants for `sessionIds`; throws 403 when it falls short. */
export function tokenScope(verified: VerifiedToken, sessionIds: readonly string[], claimName: string): GrantScope {
  const { sessions } = verified;
  if (sessions === undefined) throw new ForbiddenError(`access token has no ${JSON.stringify(claimName)} claim (an array of session ids, or ["*"])`);
  if (sessions.includes('*')) return { kind: 'all' };
  const uncovered = sessionIds.filter((id) => !sessions.includes(id)).length;
  // A multiplexed request names no id back: the caller learns that its token falls short, not where.
  if (uncovered > 0 && sessionIds.length === 1) throw new ForbiddenError(`access token does not cover session ${JSON.stringify(sessionIds[0])}`);
  if (uncovered > 0) throw new ForbiddenError(`access token does not cover ${uncovered} of the ${sessionIds.length} sessions asked for`);
  return { kind: 'sessions', ids: new Set(sessions) };
}

/**
 * Creates the token authorizer: HS256 with a secret (a string, as before), or
 * any of TokenOptions (HS256 and JWKS both allowed at once, chosen by the
 * token's `alg`).
 */
export function createJwtAuthorizer(options: string | TokenOptions, shared?: TokenVerifier): Authorizer {
  const opts: TokenOptions = typeof options === 'string' ? { secret: options } : options;
  // A verifier made elsewhere (for the pass-through's "is this a pollcast token" check) shares its JWKS cache.
  const verifier = shared ?? createTokenVerifier(opts);
  const claimName = opts.sessionsClaim ?? DEFAULT_SESSIONS_CLAIM;
  return async (credentials, sessionIds) => {
    const token = tokenFrom(credentials, verifier.cookieName);
    if (token === undefined) throw new UnauthorizedError(`an access token is required (Authorization: Bearer, ?access_token= or the ${verifier.cookieName} cookie)`);
    const verified = await verifier.verify(token);
    return { expiresAtMs: verified.expiresAtMs, scope: tokenScope(verified, sessionIds, claimName) };
  };
}

/** The token options of a configuration (AUTH_JWT_SECRET, AUTH_JWKS_URL and what goes with them). */
export function tokenOptionsOf(config: Pick<Config, 'authJwtSecret' | 'authJwksUrl' | 'authJwksCacheSeconds' | 'authJwksCooldownSeconds' | 'authJwtIssuer' | 'authJwtAudience' | 'authJwtSessionsClaim' | 'authCookieName'>): TokenOptions {
  return {
    secret: config.authJwtSecret,
    jwksUrl: config.authJwksUrl,
    jwksCacheMaxAgeMs: config.authJwksCacheSeconds * 1000,
    jwksCooldownMs: config.authJwksCooldownSeconds * 1000,
    issuer: config.authJwtIssuer,
    audience: config.authJwtAudience,
    sessionsClaim: config.authJwtSessionsClaim,
    cookieName: config.authCookieName,
  };
}
