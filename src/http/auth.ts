/**
 * Subscriber authentication (CONTRACT.md section 4): an HS256 JWT from the
 * `Authorization` header or the `access_token` query parameter, whose
 * `sessions` claim lists the sessions it may read (`["*"]` for all) and
 * whose `exp` claim is required.
 */
import type { Context } from 'hono';
import { jwtVerify, errors as joseErrors } from 'jose';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';

/** What an authorized request may rely on. */
export interface Grant {
  /** When the token expires (its `exp` × 1000, always in the future), so a stream can end then; undefined when auth is off. */
  expiresAtMs: number | undefined;
}

/** Where a request's token may be: the raw `Authorization` header and the `access_token` query parameter. */
export interface Credentials {
  authorization: string | undefined;
  accessToken: string | undefined;
}

/** Checks that the request may read every one of `sessionIds`; throws 401/403 errors. */
export type Authorizer = (credentials: Credentials, sessionIds: readonly string[]) => Promise<Grant>;

/** A hono request's credentials. */
export function credentialsOf(c: Context): Credentials {
  return { authorization: c.req.header('authorization'), accessToken: c.req.query('access_token') };
}

/** Clock skew tolerated on `exp` and `nbf` (seconds). */
export const JWT_CLOCK_TOLERANCE_SECONDS = 5;
/** Longest token accepted (bytes); longer ones are refused before any crypto. */
export const MAX_TOKEN_LENGTH = 8192;

/** Lets every request through (AUTH=none, or the built-in demo). */
export const allowAll: Authorizer = async () => ({ expiresAtMs: undefined });

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
    return { expiresAtMs: exp * 1000 };
  };
}
