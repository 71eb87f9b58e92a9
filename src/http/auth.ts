/**
 * Subscriber authentication (CONTRACT.md section 4): what an authorizer
 * reads (Credentials) and grants (Grant). Token mode (HS256 and JWKS, from
 * the header, the query or a cookie) is in auth-token.ts.
 */
import type { Context } from 'hono';
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

/**
 * The credential of an `Authorization: Bearer <credential>` header, or undefined for any other (`Basic` from a page
 * behind HTTP auth, which the browser adds to an EventSource on its own): the query or cookie is read then, and only
 * a request with neither is refused for its header (until 7 Dec 2026 any other header was a 401 whatever they held).
 */
export function bearerCredential(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  return /^Bearer[ ]+(\S+)\s*$/i.exec(authorization)?.[1];
}

/** What the caller presented itself: its `Authorization: Bearer` credential, else a non-empty `access_token`; undefined when neither. */
export function presentedBearer({ authorization, accessToken }: Credentials): string | undefined {
  return bearerCredential(authorization) ?? (accessToken === '' ? undefined : accessToken);
}

/** Checks that the request may read every one of `sessionIds` (none: that it is authenticated at all); throws 401/403 errors. */
/** How a request asks to be judged. */
export interface AuthorizeOptions {
  /**
   * A stream about to open (a GET or a multi-session POST, not a HEAD): how long an upstream check of a key (AUTH=upstream) may take before it counts as
   * unavailable for this request (the stream then opens held, the check still under way; src/http/stream-open.ts).
   */
  judgeWithinMs?: number;
}

export type Authorizer = (credentials: Credentials, sessionIds: readonly string[], options?: AuthorizeOptions) => Promise<Grant>;

/** A hono request's credentials; `keyHeader` is UPSTREAM_AUTH_HEADER, read when configured. */
export function credentialsOf(c: Context, keyHeader?: string): Credentials {
  const credentials: Credentials = { authorization: c.req.header('authorization'), accessToken: c.req.query('access_token'), cookie: c.req.header('cookie') };
  if (keyHeader !== undefined) credentials.keyHeader = c.req.header(keyHeader);
  return credentials;
}

/** The part of a grant an open stream keeps: when it runs out and how it is confirmed again. */
export function streamAccess(grant: Grant): StreamAccess | undefined {
  if (grant.expiresAtMs === undefined) return undefined;
  return grant.renew ? { expiresAtMs: grant.expiresAtMs, renew: grant.renew } : { expiresAtMs: grant.expiresAtMs };
}

/** Lets every request through (AUTH=none, or the built-in demo). */
export const allowAll: Authorizer = async () => ({ expiresAtMs: undefined, scope: { kind: 'all' } });


/** Whether a bearer value is a pollcast subscriber token (which must never be forwarded upstream). */
export type SubscriberTokenCheck = (value: string) => Promise<boolean>;

/** Nothing is a pollcast token (no token mode configured). */
export const noSubscriberTokens: SubscriberTokenCheck = async () => false;
