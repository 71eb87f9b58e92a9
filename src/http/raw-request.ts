/**
 * Reading a Node request directly, for the stream fast path: no hono Request
 * or Context, and no `headers` object, which would be built from the raw
 * header list and kept for as long as the stream stays open.
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';

/** A request as Node's HTTP/1.1 or HTTP/2 compatibility API hands it over. */
export type NodeRequest = IncomingMessage | Http2ServerRequest;

/**
 * A header's value, repeated lines joined with ", " as `Headers.get` joins them, except `cookie`'s, joined with
 * "; " (an HTTP/2 client may send each cookie as a field of its own, RFC 9113 section 8.2.3); undefined when absent.
 */
export function rawHeader(req: NodeRequest, name: string): string | undefined {
  const raw = req.rawHeaders;
  const separator = name === 'cookie' ? '; ' : ', ';
  let out: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) out = out === undefined ? raw[i + 1]! : `${out}${separator}${raw[i + 1]!}`;
  }
  return out;
}

/** The request target's path and its query string (without `?`). */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q === -1 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

/**
 * A request target in absolute form (`http://host/path?q`, which HTTP/1.1 servers must accept: RFC 9112 section
 * 3.2.2) as its path and query; any other target as it is. The authority is not pollcast's to judge: the path is.
 */
export function originForm(target: string): string {
  // An empty authority (`http:///x`) is not taken: a URL parser reads the first segment as the host there.
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]+/.exec(target);
  if (m === null) return target;
  const rest = target.slice(m[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}
