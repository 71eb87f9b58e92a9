/**
 * Requests refused before any route sees them get the same JSON error shape
 * as every other refusal instead of a bare status line: what Node's HTTP
 * parser refuses (headers past MAX_HEADER_BYTES, malformed request lines,
 * header timeouts), an HTTP/1.1 request without `Host`, and a `Host` that no
 * URL can be built from.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** How long a refused connection may take to flush its answer before it is destroyed (ms). */
export const CLIENT_ERROR_LINGER_MS = 1000;

/** The head of a JSON refusal written outside hono (no cache keeps a refusal, as errorAnswer says for the rest). */
export function refusalHeaders(body: string): Record<string, string | number> {
  return { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) };
}

/** A whole HTTP/1.1 JSON refusal for a socket no response object owns; the connection closes after it. */
function rawRefusal(status: number, reason: string, body: string): string {
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** Status and stable code for a parser error code; anything unknown is a 400. */
function answerFor(code: string | undefined): [number, string, string, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large', 'headers_too_large', 'request line and headers larger than the server accepts (MAX_HEADER_BYTES), or more header fields than it accepts (1000)'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'Request Timeout', 'request_timeout', 'request headers did not arrive in time'];
    default:
      return [400, 'Bad Request', 'bad_request', 'malformed HTTP request'];
  }
}

/** Counts a refusal made before any route (pollcast_requests_rejected_total), by its code. */
export type CountRefusal = (code: string) => void;

/** Answers parser errors with JSON and closes the connection (a listener replaces Node's bare default). */
export function installClientErrorHandler(server: Server, countRefusal?: CountRefusal): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex & { bytesWritten?: number }) => {
    // As Node's default: a reset peer or a connection that already got bytes gets nothing more.
    if (err.code === 'ECONNRESET' || !socket.writable || (socket.bytesWritten ?? 0) > 0) {
      socket.destroy();
      return;
    }
    const [status, reason, code, message] = answerFor(err.code);
    // A peer that went away mid-request (its route, if it got one, counted the refusal already) is not one more.
    if (err.code !== 'HPE_INVALID_EOF_STATE') countRefusal?.(code);
    const body = JSON.stringify({ error: message, code });
    socket.end(rawRefusal(status, reason, body));
    // A peer that never reads must not keep the socket: end() flushes, destroy follows shortly.
    setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS).unref();
  });
}

/** The JSON of a refused `CONNECT`, over HTTP/1.1 and HTTP/2 alike. */
export const CONNECT_BODY = JSON.stringify({ error: 'CONNECT is not supported: pollcast is not a proxy', code: 'method_not_allowed' });

/**
 * Answers `CONNECT` (which node:http hands to a 'connect' listener, or else drops the connection without a
 * word) with a JSON `405` and closes the connection.
 */
export function installConnectRefusal(server: Server): void {
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    socket.end(rawRefusal(405, 'Method Not Allowed', CONNECT_BODY));
    setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS).unref();
  });
}

/**
 * A `Host` no URL can be built from (as hono's adapter judges it: its host part must read back as written), or
 * null; else the `Host` as hono's adapter takes it: an IPv6 literal in its canonical form (`[::ffff:127.0.0.1]` is
 * `[::ffff:7f00:1]`), anything else as written.
 */
export function acceptedHost(host: string): string | null {
  const plain = /^[a-z0-9._-]+(?::(\d{1,5}))?$/i.exec(host);
  if (plain) return plain[1] !== undefined && Number(plain[1]) > 65535 ? null : host;
  const url = URL.parse(`http://${host}/`);
  if (url === null || url.pathname !== '/' || url.username !== '' || url.password !== '') return null;
  if (/^\[[0-9a-f:.]+\](?::\d{1,5})?$/i.test(host)) return url.host;
  return url.hostname.length !== host.length && url.hostname !== host.replace(/:\d+$/, '').toLowerCase() ? null : host;
}

/** Why an HTTP/1.x request's `Host` refuses it (RFC 9112, section 3.2), or null. */
function hostProblem(req: IncomingMessage): string | null {
  let count = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.length === 4 && req.rawHeaders[i]!.toLowerCase() === 'host') count++;
  if (count > 1) return 'more than one Host header';
  const host = req.headers.host;
  if (host === undefined) return req.httpVersionMinor === 0 ? null : 'the Host header is required (HTTP/1.1)';
  const accepted = acceptedHost(host);
  if (accepted === null) return 'the Host header is malformed (no URL can be built from it)';
  // What the routes read (hono builds its URL from it): an IPv6 literal as the URL writes it.
  if (accepted !== host) req.headers.host = accepted;
  return null;
}

/**
 * Refuses an HTTP/1.x request whose `Host` is missing (HTTP/1.1), repeated or malformed with a JSON `400`, before
 * any route (the stream fast path included) sees it; the server is created with `requireHostHeader: false` so that
 * this answer, not Node's empty one, is sent.
 */
export function withHostRequired<Req extends IncomingMessage, Res extends ServerResponse>(listener: (req: Req, res: Res) => void, countRefusal?: CountRefusal): (req: Req, res: Res) => void {
  return (req, res) => {
    if (req.httpVersionMajor !== 1) return listener(req, res);
    const problem = hostProblem(req);
    if (problem === null) return listener(req, res);
    countRefusal?.('bad_request');
    const body = JSON.stringify({ error: problem, code: 'bad_request' });
    res.shouldKeepAlive = false;
    res.writeHead(400, refusalHeaders(body)).end(body);
  };
}

const EXPECTATION_BODY = JSON.stringify({ error: 'the only expectation pollcast meets is Expect: 100-continue', code: 'expectation_failed' });

/** Answers an `Expect` other than `100-continue` with a JSON `417` (Node's own answer has no body). */
export function installExpectationRefusal(server: Server, countRefusal?: CountRefusal): void {
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    countRefusal?.('expectation_failed');
    res.shouldKeepAlive = false;
    res.writeHead(417, refusalHeaders(EXPECTATION_BODY)).end(EXPECTATION_BODY);
  });
}

/**
 * Sends `100 Continue` only to a request whose declared body its route may take (`maxBodyBytes(path)`: a multi-session
 * `POST /events` body's bound on that path, PASSTHROUGH_MAX_BODY_BYTES elsewhere); a larger one goes to its route without
 * it, which answers `413` at once, before the client uploads it (curl waits a second for either). HTTP/1.1 only:
 * over HTTP/2 Node sends the `100` itself. Until 7 Dec 2026 Node sent the `100` first and curl had
 * uploaded 2.6 MB of an 11 MB body by the time the `413` came (an audit).
 */
export function installContinueCheck(server: Server, maxBodyBytes: (path: string) => number): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    // The path as routes see it, from an absolute-form target too (`POST http://host/events`).
    const path = URL.parse(req.url ?? '/', 'http://x')?.pathname ?? '/';
    if (!(Number(req.headers['content-length']) > maxBodyBytes(path))) res.writeContinue();
    server.emit('request', req, res);
  });
}

/**
 * The answer for a request hono's adapter could not turn into a Request (a
 * `Host` no URL can be built from: `400`), or for a handler that threw
 * before answering (`500`, as any unexpected error), in the JSON shape.
 */
export function adapterErrorResponse(countRefusal?: CountRefusal): (err: unknown) => Response {
  return (err) => {
    const bad = err instanceof Error && err.name === 'RequestError';
    const body = bad ? { error: `malformed request (its Host header or target): ${err.message}`, code: 'bad_request' } : { error: 'internal error', code: 'internal' };
    countRefusal?.(body.code);
    return Response.json(body, { status: bad ? 400 : 500, headers: { 'cache-control': 'no-store' } });
  };
}
