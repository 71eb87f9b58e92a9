/**
 * Cleartext HTTP/2 with prior knowledge (h2c) on the HTTP/1.1 port: every
 * new connection's first bytes are read, a connection that opens with the
 * HTTP/2 preface is handed to an `http2` server running the same hono app,
 * any other to node:http exactly as before. This is what a TLS-terminating
 * proxy speaking HTTP/2 to its backend (and `curl --http2-prior-knowledge`)
 * sends; browsers use HTTP/2 only over TLS, i.e. through such a proxy.
 * Node has no h2c `Upgrade:` support, and pollcast does not offer it.
 *
 * On by default (H2C=false turns it off). The first read of every connection
 * happens in JavaScript (a buffer per connection) instead of in node:http's
 * parser; with the young-generation cap pollcast runs with (runtime-flags.ts)
 * that measured no difference in memory per idle HTTP/1.1 stream.
 */
import { METHODS, type Server } from 'node:http';
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { NodeListener } from './fast-path.ts';
import { acceptedHost, CONNECT_BODY, refusalHeaders, type CountRefusal } from './client-error.ts';
import { FORWARD_MAX_RESPONSE_HEAD_BYTES } from '../upstream/forwarder.ts';
import type { Logger } from 'pino';

/** The client connection preface of RFC 9113 §3.4: no HTTP/1.x request starts with it. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/**
 * Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS);
 * a client past it is refused by the protocol. The per-client stream limits still apply.
 */
export const H2_MAX_CONCURRENT_STREAMS = 1000;
/**
 * Header fields a request may carry (pseudo-headers aside): what Node's HTTP/1.1 parser takes (1,000 fields, `Host`
 * included, are served on Node 24 and 1,001 refused with 431), so that HTTP/2 takes the same requests. Past it, the
 * 431 JSON.
 */
export const MAX_HEADER_FIELDS = 1000;
/**
 * What Node's http2 layer itself enforces (nghttp2 counts each field as name, value and 32 octets): room for lists
 * up to twice MAX_HEADER_BYTES and MAX_HEADER_FIELDS fields, so that pollcast's own check answers them with the 431
 * JSON; only larger ones are reset (`ENHANCE_YOUR_CALM`). Node enforces it once the client has acknowledged the
 * settings, that is from a connection's second request on (an audit, 7 Dec 2026: at MAX_HEADER_BYTES itself, every
 * oversized list after the first was reset with no answer, and 129 fields were reset where HTTP/1.1 serves 1,000).
 */
function enforcedListSize(maxHeaderBytes: number): { maxHeaderListSize: number; maxHeaderListPairs: number } {
  const pairs = 2 * (MAX_HEADER_FIELDS + 8);
  return { maxHeaderListSize: 2 * maxHeaderBytes + 32 * pairs, maxHeaderListPairs: pairs };
}
/**
 * An HTTP/2 connection with no stream open for this long is sent GOAWAY (ms): nothing new starts on it, and the
 * client opens a new connection for what comes next. Looked at every H2_IDLE_SWEEP_MS, so it is sent between this
 * and this plus a sweep after the last stream closed.
 */
export const H2_IDLE_TIMEOUT_MS = 120_000;
/** How often connections are looked at for H2_IDLE_TIMEOUT_MS (ms). */
export const H2_IDLE_SWEEP_MS = 10_000;

/**
 * What one HTTP/2 connection may hold queued for its peer (Node's `maxSessionMemory`, in MB) for a stream bound of
 * `maxQueueBytes` (SUBSCRIBER_MAX_QUEUE_BYTES): every stream it may carry holding its bound and one more write (a
 * chunk of catch-up, a ~1 MB event). Past Node's default, 10 MB, new streams were refused (`RST_STREAM`
 * `ENHANCE_YOUR_CALM`, no response at all) and, after 100 of them, the connection with every stream on it
 * (`GOAWAY` `INTERNAL_ERROR`): in an audit (7 Dec 2026), from the 101st stream catching up at once on one connection
 * (~130 KB to ~650 KB each). Memory stays bounded by each stream's own bound (a slow reader is dropped past it) and
 * the stream limits (MAX_STREAMS_PER_IP), as over HTTP/1.1.
 */
export function sessionMemoryMb(maxQueueBytes: number): number {
  // Node's MB is 10^6 bytes. (A review asked whether Node keeps the figure in 32 bits before multiplying it: on Node 24,
  // 4,295, 10^6 and 2·10^9 all served 20 streams of 200 KB on one connection, as 10 does; 1 refused 15 of them.)
  return Math.ceil((H2_MAX_CONCURRENT_STREAMS * (maxQueueBytes + ONE_WRITE_BYTES)) / 1e6);
}
/** The largest write a stream makes past its bound, for `sessionMemoryMb`: a catch-up chunk, a big event. */
const ONE_WRITE_BYTES = 2 ** 20;

export interface H2cOptions {
  /** The request listener, as served over HTTP/1.1 (the stream fast path in front of hono). */
  listener: NodeListener;
  /** Largest header list accepted (MAX_HEADER_BYTES); Node's http2 layer is let through up to twice as much, answered with the 431 JSON. */
  maxHeaderBytes: number;
  /** Unsent bytes a stream may hold before it is dropped as slow (SUBSCRIBER_MAX_QUEUE_BYTES): sizes the connection's memory. */
  maxQueueBytes: number;
  /** How long a new connection may take to send its first bytes before it is dropped (ms). */
  firstBytesTimeoutMs: number;
  log: Logger;
  /** Counts the header lists refused here (`headers_too_large`). */
  countRefusal?: CountRefusal;
  /** H2_IDLE_TIMEOUT_MS (tests shorten it; the sweep then runs four times as often). */
  idleTimeoutMs?: number;
}

/** The HTTP/2 side of a server. */
export interface H2c {
  /** HTTP/2 connections open now. */
  readonly sessions: number;
  /** HTTP/2 connections accepted since the start. */
  readonly sessionsTotal: number;
  /** Sends GOAWAY on every HTTP/2 connection: open streams finish, the client opens a new connection for anything else. */
  goAway(): void;
  /** Drops connections that have not sent their first bytes yet (shutdown). */
  closeIdle(): void;
  /** Drops every HTTP/2 connection and every connection not yet routed, at once. */
  destroyAll(): void;
}

/**
 * A request's header list as HTTP/1.1 would count it against MAX_HEADER_BYTES: each field (pseudo-headers,
 * the request line's parts, included) as `name: value` and its line end.
 */
export function headerListBytes(rawHeaders: readonly string[]): number {
  let bytes = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) bytes += Buffer.byteLength(rawHeaders[i]!) + Buffer.byteLength(rawHeaders[i + 1]!) + 4;
  return bytes;
}

/** Header fields of a request's list, its pseudo-headers (`:method`, `:path`, …) not counted. */
function fieldCount(rawHeaders: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (!rawHeaders[i]!.startsWith(':')) n++;
  return n;
}

/** Methods an HTTP/1.1 request line may carry here (node:http's parser refuses the rest with a 400). */
const KNOWN_METHODS: ReadonlySet<string> = new Set(METHODS);
const HEADERS_TOO_LARGE_BODY = JSON.stringify({ error: 'request line and headers larger than the server accepts (MAX_HEADER_BYTES)', code: 'headers_too_large' });
const TOO_MANY_FIELDS_BODY = JSON.stringify({ error: `more header fields than the server accepts (${MAX_HEADER_FIELDS})`, code: 'headers_too_large' });
const BAD_AUTHORITY_BODY = JSON.stringify({ error: 'the :authority (or Host) is malformed (no URL can be built from it)', code: 'bad_request' });
const AUTHORITY_MISMATCH_BODY = JSON.stringify({ error: 'the :authority and the Host header name different hosts', code: 'bad_request' });

/**
 * The checks an HTTP/1.1 request passes before any route, for an HTTP/2 one: a header list past `maxBytes` is
 * refused with the `431` JSON an HTTP/1.1 client gets (Node's http2 layer advertises SETTINGS_MAX_HEADER_LIST_SIZE
 * but lets larger lists through: 40 KB and 100 KB against 32 KB were served until 6 Dec 2026); the `:authority`
 * (or `host`) is judged as an HTTP/1.1 `Host` (`acceptedHost`): malformed, a JSON `400`; an IPv6 literal is taken
 * in its canonical form (`[::ffff:127.0.0.1]`, refused by hono's adapter until 6 Dec 2026, is `[::ffff:7f00:1]`);
 * a `host` beside an `:authority` must name the same host.
 */
function withRequestChecks(listener: NodeListener, maxBytes: number, countRefusal?: CountRefusal): (req: Http2ServerRequest, res: Http2ServerResponse) => void {
  const refuse = (res: Http2ServerResponse, status: number, code: string, body: string): void => {
    countRefusal?.(code);
    res.writeHead(status, refusalHeaders(body)).end(body);
  };
  return (req, res) => {
    if (fieldCount(req.rawHeaders) > MAX_HEADER_FIELDS) return refuse(res, 431, 'headers_too_large', TOO_MANY_FIELDS_BODY);
    if (headerListBytes(req.rawHeaders) > maxBytes) return refuse(res, 431, 'headers_too_large', HEADERS_TOO_LARGE_BODY);
    // An HTTP/2 :method is any token; HTTP/1.1's parser takes only the methods it knows, in capitals (`get` is 400).
    if (!KNOWN_METHODS.has(req.method)) return refuse(res, 400, 'bad_request', JSON.stringify({ error: `method ${JSON.stringify(req.method.slice(0, 20))} is not an HTTP method (method names are case-sensitive)`, code: 'bad_request' }));
    const name = req.headers[':authority'] !== undefined ? ':authority' : 'host';
    const authority = req.headers[name];
    if (typeof authority === 'string') {
      const accepted = acceptedHost(authority);
      if (accepted === null) return refuse(res, 400, 'bad_request', BAD_AUTHORITY_BODY);
      // Both sent, naming two hosts: malformed (RFC 9113 section 8.3.1). Until 7 Dec 2026 such a request was served,
      // its `Host` passed on as `X-Forwarded-Host` (an audit).
      const host = name === ':authority' ? req.headers.host : undefined;
      if (typeof host === 'string' && acceptedHost(host)?.toLowerCase() !== accepted.toLowerCase()) return refuse(res, 400, 'bad_request', AUTHORITY_MISMATCH_BODY);
      // What the routes read (hono's adapter builds its URL from `req.authority`, which reads this header).
      if (accepted !== authority) req.headers[name] = accepted;
    }
    (listener as (req: Http2ServerRequest, res: Http2ServerResponse) => void)(req, res);
  };
}

/** Hands `socket` to `h2` if its first bytes are the HTTP/2 preface, else to `h1`; `undecided` holds it meanwhile. */
function route(socket: Socket, h1: (s: Socket) => void, h2: (s: Socket) => void, undecided: Set<Socket>, timeoutMs: number): void {
  let seen: Buffer | null = null;
  // Errors before a server owns the socket are only the peer going away.
  const onError = () => {};
  const finish = (to: ((s: Socket) => void) | null) => {
    clearTimeout(timer);
    undecided.delete(socket);
    socket.off('readable', onReadable);
    socket.off('end', onEnd);
    socket.off('close', onClose);
    socket.off('error', onError);
    if (to === null) return;
    // Put back what was read: the chosen server parses it from the start.
    if (seen !== null) socket.unshift(seen);
    to(socket);
  };
  const onReadable = () => {
    let chunk: Buffer | null;
    while ((chunk = socket.read() as Buffer | null) !== null) seen = seen === null ? chunk : Buffer.concat([seen, chunk]);
    if (seen === null) return;
    const n = Math.min(seen.length, H2_PREFACE.length);
    if (!seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) finish(h1);
    else if (seen.length >= H2_PREFACE.length) finish(h2);
  };
  const onClose = () => finish(null);
  // A peer that half-closes before the preface is complete: node:http answers
  // (or times out) what it sent; a peer that sent nothing is done.
  const onEnd = () => {
    if (seen !== null) finish(h1);
    else {
      finish(null);
      socket.destroy();
    }
  };
  const timer = setTimeout(() => {
    finish(null);
    socket.destroy();
  }, timeoutMs);
  timer.unref();
  undecided.add(socket);
  socket.on('error', onError);
  socket.on('close', onClose);
  socket.on('end', onEnd);
  socket.on('readable', onReadable);
}

/**
 * Serves h2c on `http`'s port: takes over its 'connection' listeners (node:http's own parser setup)
 * and calls them for every connection that is not HTTP/2.
 */
export function serveH2c(http: Server, options: H2cOptions): H2c {
  const { log } = options;
  const { maxHeaderListSize, maxHeaderListPairs } = enforcedListSize(options.maxHeaderBytes);
  const h2 = createHttp2Server(
    // A forwarded answer's head may be as large as the forwarder takes (Node's default send bound, 64 KiB, reset larger
    // ones with no answer; a review). HPACK's literals cost a few bytes more than the head: twice is ample.
    { settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS, maxHeaderListSize }, maxHeaderListPairs, maxSendHeaderBlockLength: 2 * FORWARD_MAX_RESPONSE_HEAD_BYTES, maxSessionMemory: sessionMemoryMb(options.maxQueueBytes) },
    withRequestChecks(options.listener, options.maxHeaderBytes, options.countRefusal),
  );
  // A CONNECT never reaches the request listener (node's http2 answers it 405 with no body when nobody listens).
  h2.on('connect', (_req: Http2ServerRequest, res: Http2ServerResponse) => {
    res.writeHead(405, refusalHeaders(CONNECT_BODY)).end(CONNECT_BODY);
  });
  const sessions = new Set<ServerHttp2Session>();
  const undecided = new Set<Socket>();
  let sessionsTotal = 0;
  // Each connection's open streams, and since when it has had none (performance.now(): a step of the wall clock moves nothing).
  const use = new WeakMap<ServerHttp2Session, { open: number; idleSince: number }>();
  h2.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    sessionsTotal++;
    const state = { open: 0, idleSince: performance.now() };
    use.set(session, state);
    session.on('stream', (stream: ServerHttp2Stream) => {
      state.open++;
      stream.once('close', () => {
        if (--state.open === 0) state.idleSince = performance.now();
      });
    });
    session.once('close', () => sessions.delete(session));
  });
  // Idle connections are found by one sweep, not by Node's own timeout (h2.setTimeout): that one kept every
  // connection, ended or not, in its timer list for the whole timeout, about 2.2 KB each for 120 s, and one client
  // opening and dropping 1,700 connections a second held 0.5 GB (memory audit, 7 Dec 2026). GOAWAY, graceful.
  const idleMs = options.idleTimeoutMs ?? H2_IDLE_TIMEOUT_MS;
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const session of sessions) {
      const state = use.get(session);
      if (state !== undefined && state.open === 0 && now - state.idleSince >= idleMs && !session.closed) session.close();
    }
  }, Math.min(H2_IDLE_SWEEP_MS, idleMs / 4));
  sweep.unref();
  // A peer breaking the protocol costs its own connection only.
  h2.on('sessionError', (err: Error) => log.debug({ err: err.message }, 'HTTP/2 connection error'));
  const h1Listeners = http.listeners('connection') as Array<(socket: Socket) => void>;
  http.removeAllListeners('connection');
  const toH1 = (socket: Socket) => {
    for (const listener of h1Listeners) listener.call(http, socket);
  };
  const toH2 = (socket: Socket) => {
    // node:http's sockets stay half-open when the peer ends (an HTTP/1.1 client may FIN and still read the answer);
    // HTTP/2 has no such state, and its session does not close on a half-open socket: a caller whose connection
    // went kept one stream open, and its forwarded request running upstream, until a timeout (h2c audit).
    socket.allowHalfOpen = false;
    h2.emit('connection', socket);
  };
  http.on('connection', (socket: Socket) => route(socket, toH1, toH2, undecided, options.firstBytesTimeoutMs));
  return {
    get sessions() {
      return sessions.size;
    },
    get sessionsTotal() {
      return sessionsTotal;
    },
    goAway() {
      clearInterval(sweep);
      for (const s of sessions) s.close();
    },
    closeIdle() {
      for (const socket of [...undecided]) socket.destroy();
    },
    destroyAll() {
      clearInterval(sweep);
      for (const socket of [...undecided]) socket.destroy();
      for (const s of [...sessions]) s.destroy();
    },
  };
}
