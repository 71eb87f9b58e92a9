/**
 * Subscriber authentication (CONTRACT.md section 4): an HS256 JWT from the
 * `Authorization` header or the `access_token` query parameter, whose
 * `sessions` claim lists the sessions it may read (`["*"]` for all) and
 * whose `exp` claim is required.
 */
import type { Context } from 'hono';
import { jwtVerify, errors as joseErrors } from 'jose';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';
import type { StreamAccess } from '../hub/connection.ts';
import type { UpstreamCredential } from '../upstream/credential.ts';

/** Which sessions a caller may see, for routes that list sessions rather than name them. */
export type GrantScope =
  /** Every session the operator's key sees (AUTH=none, a `["*"]` token). */
  | { kind: 'all' }
  /** The ids of a token's sessions claim. */
  | { kind: 'sessions'; ids: ReadonlySet<string> }
  /** What the caller's own upstream key sees (AUTH=upstream). */
  | { kind: 'upstream'; credential: UpstreamCredential };

/** What an authorized request may rely on. */
export interface Grant {
  /** When the grant runs out (a token's `exp` × 1000, an upstream verdict's expiry; in the future), so a stream is renewed or ended then; undefined when it does not. */
  expiresAtMs: number | undefined;
  /** Confirms the grant again without the client (an upstream key's verdict); absent for tokens, which the client renews itself. */
  renew?: () => Promise<number | { error: string }>;
  scope: GrantScope;
  /** The caller's upstream credential, accepted by the upstream for the sessions asked (AUTH=upstream): a loop without UPSTREAM_API_KEY may run on it. */
  upstreamCredential?: UpstreamCredential;
}

/** Where a request's credential may be, as raw values (the authorizer picks what its mode reads). */
export interface Credentials {
  /** The `Authorization` header. */
  authorization: string | undefined;
  /** The `access_token` query parameter (EventSource cannot set headers). */
  accessToken: string | undefined;
  /** The raw `Cookie` header (the token may be in the cookie AUTH_COOKIE_NAME). */
  cookie: string | undefined;
  /** The header named by UPSTREAM_AUTH_HEADER, when one is configured (AUTH=upstream reads the caller's key there). */
  keyHeader?: string | undefined;
}

/** Checks that the request may read every one of `sessionIds` (none: that it is authenticated at all); throws 401/403 errors. */
export type Authorizer = (credentials: Credentials, sessionIds: readonly string[]) => Promise<Grant>;

/** A hono request's credentials. */
export function credentialsOf(c: Context): Credentials {
  return { authorization: c.req.header('authorization'), accessToken: c.req.query('access_token'), cookie: c.req.header('cookie') };
}

/** The part of a grant an open stream keeps: when it runs out and how it is confirmed again. */
export function streamAccess(grant: Grant): StreamAccess | undefined {
  if (grant.expiresAtMs === undefined) return undefined;
  return grant.renew ? { expiresAtMs: grant.expiresAtMs, renew: grant.renew } : { expiresAtMs: grant.expiresAtMs };
}

/** Clock skew tolerated on `exp` and `nbf` (seconds). */
export const JWT_CLOCK_TOLERANCE_SECONDS = 5;
/** Longest token accepted (bytes); longer ones are refused before any crypto. */
export const MAX_TOKEN_LENGTH = 8192;

/** Lets every request through (AUTH=none, or the built-in demo). */
export const allowAll: Authorizer = async () => ({ expiresAtMs: undefined, scope: { kind: 'all' } });

function tokenFrom({ authorization, accessToken }: Credentials): string | undefined {
  if (authorization !== undefined) {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    if (!m) throw new UnauthorizedError('Authorization header must be "Bearer <token>"');
    return m[1];
  }
  return accessToken === undefined || accessToken === '' ? undefined : accessToken;
}

/** Creates the HS256 authorizer; the algorithm is pinned so `alg: none` or RS/HS confusion is refused. */
export function createJwtAuthorizer(secret: string): Authorizer {
  const key = new TextEncoder().encode(secret);
  return async (credentials, sessionIds) => {
    const token = tokenFrom(credentials);
    if (token === undefined) throw new UnauthorizedError('an access token is required (Authorization: Bearer or ?access_token=)');
    if (token.length > MAX_TOKEN_LENGTH) throw new UnauthorizedError('access token too long');
    let sessions: unknown;
    let exp: number | undefined;
    try {
      const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], clockTolerance: JWT_CLOCK_TOLERANCE_SECONDS });
      sessions = payload.sessions;
      exp = payload.exp;
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new UnauthorizedError('access token expired');
      if (err instanceof joseErrors.JWTClaimValidationFailed) throw new UnauthorizedError(`access token not valid: ${err.claim} check failed`);
      throw new UnauthorizedError('access token invalid');
    }
    // A token without exp would be valid forever: a leaked one could never be shut out short of rotating the secret.
    if (exp === undefined) throw new UnauthorizedError('access token has no exp claim');
    if (!Array.isArray(sessions) || !sessions.every((s) => typeof s === 'string')) {
      throw new ForbiddenError('access token has no "sessions" claim (an array of session ids, or ["*"])');
    }
    if (!sessions.includes('*')) {
      const uncovered = sessionIds.filter((id) => !sessions.includes(id)).length;
      // A multiplexed request names no id back: the caller learns that its token falls short, not where.
      if (uncovered > 0 && sessionIds.length === 1) throw new ForbiddenError(`access token does not cover session ${JSON.stringify(sessionIds[0])}`);
      if (uncovered > 0) throw new ForbiddenError(`access token does not cover ${uncovered} of the ${sessionIds.length} sessions asked for`);
    }
    // exp is enforced to the second: a stream is closed at exp, and its reconnect must not be let in
    // for the skew tolerance (which stays for nbf), or a reconnect loop would run until exp + tolerance.
    if (exp * 1000 <= Date.now()) throw new UnauthorizedError('access token expired');
    return { expiresAtMs: exp * 1000, scope: sessions.includes('*') ? { kind: 'all' } : { kind: 'sessions', ids: new Set(sessions as string[]) } };
  };
}

/** Whether a bearer value is a pollcast subscriber token (which must never be forwarded upstream). */
export type SubscriberTokenCheck = (value: string) => Promise<boolean>;

/**
 * The HS256 check of `secret` (none: nothing is a pollcast token). A token whose
 * signature holds is one even when expired or short of a claim: it is still
 * pollcast's, and no business of the upstream's.
 */
export function createSubscriberTokenCheck(secret: string | undefined): SubscriberTokenCheck {
  if (secret === undefined) return async () => false;
  const key = new TextEncoder().encode(secret);
  return async (value) => {
    if (value.length > MAX_TOKEN_LENGTH || value.split('.').length !== 3) return false;
    try {
      await jwtVerify(value, key, { algorithms: ['HS256'], clockTolerance: JWT_CLOCK_TOLERANCE_SECONDS });
      return true;
    } catch (err) {
      // jose checks the claims only once the signature is verified.
      return err instanceof joseErrors.JWTExpired || err instanceof joseErrors.JWTClaimValidationFailed;
    }
  };
}
