/**
 * What a forwarded request and its answer carry across pollcast (pure
 * functions): hop-by-hop headers (RFC 9110 §7.6.1) and those the `Connection`
 * header names stay on their own hop, `Host` is the upstream's, the caller's
 * host and protocol travel as `X-Forwarded-*`, and a pollcast subscriber token
 * (its cookie) never leaves pollcast.
 */
import type { OutgoingHttpHeaders } from 'node:http';

/** Headers that belong to one connection, never forwarded either way (plus any named in `Connection`). */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Request headers pollcast sets or drops itself: the upstream's Host, and `Expect` (pollcast has already read past it). */
const REQUEST_DROPPED: ReadonlySet<string> = new Set(['host', 'expect']);

/**
 * Request headers a proxy writes about the request it passes on (the caller's address, scheme, port, path prefix,
 * host), besides the `X-Forwarded-For/-Proto/-Host` pollcast writes itself. Frameworks behind proxies trust them
 * (Werkzeug's ProxyFix, Spring): kept only from a trusted proxy in front (TRUST_PROXY), never taken from a caller's
 * word (an audit, 7 Dec 2026: a caller's `X-Forwarded-Prefix` went upstream as sent).
 */
const PROXY_WRITTEN: ReadonlySet<string> = new Set([
  'forwarded',
  'x-real-ip',
  'true-client-ip',
  'x-client-ip',
  'cf-connecting-ip',
  'fly-client-ip',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-forwarded-scheme',
  'x-forwarded-protocol',
  'x-forwarded-ssl',
  'front-end-https',
  'x-url-scheme',
  'x-original-host',
  'x-host',
  'x-cluster-client-ip',
  'x-forwarded',
]);

/**
 * Headers by which a client asks a server to take another method than the request's (a POST tunnelling a DELETE):
 * such a request is refused (400), not forwarded with the header dropped, which would send it to another route
 * without a word (a review, 7 Dec 2026).
 */
export const METHOD_OVERRIDES: readonly string[] = ['x-http-method-override', 'x-http-method', 'x-method-override'];

/**
 * Request headers that tell a server of another path or method than the request's own (IIS/Symfony's
 * `X-Original-URL`, Envoy's original path, an auth proxy's original method, and the method overrides above, refused
 * before this when they ask for another method): pollcast judged the path and method it forwards, so these never go
 * on, whoever wrote them (an audit and a review, 7 Dec 2026: an `X-Original-URL` holding an id the path would have
 * refused went upstream, and no front proxy of pollcast writes one the upstream needs).
 */
const ROUTE_OVERRIDES: ReadonlySet<string> = new Set([
  'x-original-url',
  'x-rewrite-url',
  'x-forwarded-uri',
  'x-forwarded-path',
  'x-envoy-original-path',
  'x-original-uri',
  'x-forwarded-method',
  'x-original-method',
  ...METHOD_OVERRIDES,
]);

/** The header names a raw list's `Connection` values name (lower-cased). */
function connectionNamed(raw: readonly string[]): Set<string> {
  const named = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== 'connection') continue;
    for (const token of raw[i + 1]!.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') named.add(name);
    }
  }
  return named;
}

/** A cookie pair's name, as `Cookie` is read (text before the first `=`, trimmed). */
export function cookieNameOf(part: string): string {
  return part.slice(0, part.includes('=') ? part.indexOf('=') : part.length).trim();
}

/** `Cookie` without the cookies named in `names` (undefined when nothing else is left). */
export function withoutCookies(cookie: string, names: ReadonlySet<string>): string | undefined {
  const kept = cookie
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part !== '' && !names.has(cookieNameOf(part)));
  return kept.length === 0 ? undefined : kept.join('; ');
}

/**
 * A raw query pair's name, decoded as `URLSearchParams` decodes it (`+` as a space, a malformed escape as U+FFFD),
 * so a parameter judged through URLSearchParams is removed by the same name.
 */
export function queryNameOf(part: string): string {
  return new URLSearchParams(part).keys().next().value ?? '';
}

/** A raw query string without the pairs named in `names`, every other byte kept in order (undefined: none is there). */
export function withoutQueryParams(query: string, names: ReadonlySet<string>): string | undefined {
  const parts = query.split('&');
  const kept = parts.filter((part) => !names.has(queryNameOf(part)));
  return kept.length === parts.length ? undefined : kept.join('&');
}

/** How the caller reached pollcast, for the `X-Forwarded-*` headers. */
export interface ForwardedFrom {
  /** The caller's address. */
  clientIp: string;
  /** `http` (pollcast listens in cleartext) unless a trusted proxy in front says otherwise. */
  proto: string;
  /** The `Host` (or HTTP/2 `:authority`) the caller used; undefined when it sent none. */
  host: string | undefined;
  /** Keep the caller's `X-Forwarded-Proto`/`-Host` and other proxy-written headers (a trusted proxy in front set them); otherwise pollcast's replace them, and the others are dropped. */
  trustForwarded: boolean;
}

/** What the request headers lose besides hop-by-hop ones: the pollcast cookie, and `Authorization` when it carries a pollcast token. */
export interface RequestHeaderOptions {
  cookieName: string;
  /** Other cookies that carry a pollcast token: cut out of `Cookie` too. */
  dropCookies?: ReadonlySet<string>;
  dropAuthorization: boolean;
  /** Other headers (lower-case names) a line of which carries a pollcast token (UPSTREAM_AUTH_HEADER's, any other): dropped too. */
  dropHeaders?: ReadonlySet<string>;
}

/**
 * The headers of a forwarded request, as a flat `[name, value, …]` list in the
 * caller's order and case: hop-by-hop, Connection-named, Host, Expect and
 * HTTP/2 pseudo-headers removed, the pollcast cookie cut out of `Cookie`
 * (several Cookie fields joined into one),
 * `X-Forwarded-For` appended to, `X-Forwarded-Proto`/`-Host` set, other
 * proxy-written headers (`PROXY_WRITTEN`) kept from a trusted proxy only,
 * route overrides (`ROUTE_OVERRIDES`) never.
 */
export function forwardRequestHeaders(raw: readonly string[], from: ForwardedFrom, options: RequestHeaderOptions): string[] {
  const named = connectionNamed(raw);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let proto: string | undefined;
  let host: string | undefined;
  let cookieAt = -1;
  const cookieNames = new Set([options.cookieName, ...(options.dropCookies ?? [])]);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (lower.startsWith(':') || HOP_BY_HOP_HEADERS.has(lower) || REQUEST_DROPPED.has(lower) || named.has(lower)) continue;
    if ((lower === 'authorization' && options.dropAuthorization) || options.dropHeaders?.has(lower)) continue;
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      continue;
    }
    if (ROUTE_OVERRIDES.has(lower) || (PROXY_WRITTEN.has(lower) && !from.trustForwarded)) continue;
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') {
      if (from.trustForwarded) {
        if (lower === 'x-forwarded-proto') proto ??= value;
        else host ??= value;
      }
      continue;
    }
    if (lower === 'cookie') {
      const kept = withoutCookies(value, cookieNames);
      if (kept === undefined) continue;
      // HTTP/2 callers send each cookie in a field of its own; the upstream is spoken to in HTTP/1.1, which
      // allows one Cookie header: the fields are joined with "; " (RFC 9113 §8.2.3), where the first one was.
      if (cookieAt === -1) {
        cookieAt = out.length;
        out.push(name, kept);
      } else out[cookieAt + 1] = `${out[cookieAt + 1]!}; ${kept}`;
      continue;
    }
    out.push(name, value);
  }
  out.push('x-forwarded-for', forwardedFor === undefined ? from.clientIp : `${forwardedFor}, ${from.clientIp}`);
  out.push('x-forwarded-proto', proto ?? from.proto);
  const shownHost = host ?? from.host;
  if (shownHost !== undefined) out.push('x-forwarded-host', shownHost);
  return out;
}

/**
 * The upstream's answer headers as Node writes them (repeated names as arrays,
 * `Set-Cookie` included), less hop-by-hop and Connection-named ones; with
 * `dropCors`, less the upstream's `Access-Control-*` too (pollcast's own CORS
 * policy answers for its origin).
 */
export function forwardResponseHeaders(raw: readonly string[], dropCors: boolean): OutgoingHttpHeaders {
  const named = connectionNamed(raw);
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(lower) || named.has(lower)) continue;
    if (dropCors && lower.startsWith('access-control-')) continue;
    const value = raw[i + 1]!;
    const held = out[lower];
    out[lower] = held === undefined ? value : Array.isArray(held) ? [...held, value] : [held, value];
  }
  return out;
}

/**
 * Response headers HTTP/2 allows once only (Node's http2 refuses more, and the response with them):
 * the non-pseudo part of Node's own list (lib/internal/http2/util.js, kSingleValueHeaders).
 */
const H2_SINGLE_VALUE_HEADERS = new Set([
  'access-control-allow-credentials', 'access-control-max-age', 'access-control-request-method', 'age', 'authorization',
  'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5', 'content-range',
  'content-type', 'date', 'dnt', 'etag', 'expires', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match',
  'if-range', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'range',
  'referer', 'retry-after', 'tk', 'upgrade-insecure-requests', 'user-agent', 'x-content-type-options',
]);

/**
 * The longest header name or value pollcast relays to an HTTP/2 caller: nghttp2's bound on one name or value as sent (after
 * HPACK's Huffman coding, which pollcast does not compute: a value this long as text is refused even where its coding
 * would have fit).
 */
export const H2_MAX_FIELD_BYTES = 65_536;

/**
 * Why `head` is not relayed to an HTTP/2 caller, or null: a value past H2_MAX_FIELD_BYTES, which Node's http2 layer
 * would send and an nghttp2 caller refuse, ending its connection (a review, 7 Dec 2026: a 100 KB `Set-Cookie` reset
 * the stream with no answer). Said before anything is written, so the caller gets the 502 instead.
 */
export function h2HeadProblem(head: OutgoingHttpHeaders): string | null {
  for (const [name, value] of Object.entries(head)) {
    if (name.length > H2_MAX_FIELD_BYTES) return `a header name of ${name.length} bytes is past what pollcast relays over HTTP/2 (${H2_MAX_FIELD_BYTES})`;
    for (const v of [value ?? ''].flat()) {
      const bytes = Buffer.byteLength(String(v));
      if (bytes > H2_MAX_FIELD_BYTES) return `a ${name} header value of ${bytes} bytes is past what pollcast relays over HTTP/2 (${H2_MAX_FIELD_BYTES})`;
    }
  }
  return null;
}

/**
 * An upstream head made relayable: no `Content-Length` on a `204` (which may carry none), and over HTTP/2 the
 * first of repeated values of a header it allows once (an upstream's proxy adding `X-Content-Type-Options`
 * again, say); other repeated headers stay repeated.
 */
export function relayableHead(head: OutgoingHttpHeaders, status: number, h2: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...head };
  if (status === 204) delete out['content-length'];
  if (!h2) return out;
  for (const [name, value] of Object.entries(out)) if (Array.isArray(value) && H2_SINGLE_VALUE_HEADERS.has(name)) out[name] = value[0];
  return out;
}
