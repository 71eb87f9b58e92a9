/** CORS_ORIGINS: the allowed origins, and the headers a simple (non-preflight) answer carries, as hono's cors middleware sets them. */

/** Headers exposed to browser scripts on every answer: a refused open's Retry-After, and the Durable Streams headers (src/http/durable-route.ts). */
export const CORS_EXPOSE_HEADERS = ['Retry-After', 'Stream-Next-Offset', 'Stream-Up-To-Date', 'Stream-Closed', 'Stream-Cursor', 'ETag'];

/** Parses CORS_ORIGINS: `*` or a comma-separated list of exact origins; undefined when unset (no CORS headers). */
export function corsOriginList(value: string | undefined): string[] | '*' | undefined {
  if (value === undefined) return undefined;
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  return list.includes('*') ? '*' : list;
}

/**
 * The CORS headers of a GET answer for a request from `origin`: what hono's
 * cors middleware gives every other route (the stream fast path does not
 * pass through it). Preflights stay with the middleware.
 */
export function corsHeaders(origins: string[] | '*' | undefined, origin: string | undefined): Record<string, string> {
  if (origins === undefined) return {};
  const out: Record<string, string> = { 'access-control-expose-headers': CORS_EXPOSE_HEADERS.join(',') };
  if (origins === '*') out['access-control-allow-origin'] = '*';
  else {
    if (isListedOrigin(origins, origin)) {
      out['access-control-allow-origin'] = origin;
      out['access-control-allow-credentials'] = 'true';
    }
    out.vary = 'Origin';
  }
  return out;
}

/**
 * True when `origin` is one of the listed origins (never for `*`): only those
 * may send credentials (the token cookie), since a browser refuses
 * `Access-Control-Allow-Credentials` with `*` and a wildcard would hand any
 * site the visitor's cookie-borne stream.
 */
export function isListedOrigin(origins: string[] | '*' | undefined, origin: string | undefined): origin is string {
  return Array.isArray(origins) && origin !== undefined && origins.includes(origin);
}

/**
 * True when a request from `origin` may act with a browser-sent credential
 * (the token cookie): no Origin (not a browser's cross-origin request), this
 * server's own origin, or a listed origin. Guards `POST /events`, which a
 * foreign page could otherwise send with the visitor's cookie (CSRF) even
 * though it cannot read the answer.
 */
export function originMaySendCookie(origins: string[] | '*' | undefined, origin: string | undefined, ownOrigin: string): boolean {
  if (origin === undefined) return true;
  return origin === ownOrigin || isListedOrigin(origins, origin);
}
