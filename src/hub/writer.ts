/**
 * How a stream's bytes reach its response, chosen per response: over
 * HTTP/1.1, once the head is out, shared bytes go to the socket already
 * framed as chunks (skipping res.write's per-call framing); over HTTP/2 they
 * go through res.write, since an h2 stream has no socket of its own and
 * hand-made HTTP/1.1 chunks must never reach it.
 */
import { ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { constants, type Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Chunk } from './feed.ts';
import { hasBigPart, totalLength, writeCorked } from './parts.ts';
import { PARSER_RELEASE_SUPPORTED, releaseParser } from './parser-release.ts';

/** The response a stream writes to: HTTP/1.1, or the HTTP/2 compatibility response. */
export type StreamResponse = ServerResponse | Http2ServerResponse;

/** Writes of one stream's body. */
export interface ResponseWriter {
  /** Writes one buffer. */
  write(bytes: Buffer): void;
  /** Writes a feed's chunk, in the form built once for every subscriber of this protocol. */
  writeChunk(chunk: Chunk): void;
  /** Writes buffers back to back as one unit, without copying big ones into one. */
  writeParts(parts: readonly Buffer[]): void;
  /**
   * Writes through the response itself, so its `needsDrain` and 'drain'
   * follow these bytes: what a replay paces itself by.
   */
  writePaced(parts: readonly Buffer[]): void;
  /** Bytes written but not yet taken by the connection. */
  readonly unsentBytes: number;
  /** True while the response is above its high-water mark (wait for 'drain'). */
  readonly needsDrain: boolean;
  /** True once the response can take nothing more (reset, destroyed). */
  readonly gone: boolean;
  /** Ends the body; `closeConnection` also closes an HTTP/1.1 connection once the last bytes are out. */
  end(closeConnection: boolean): void;
  /** Drops the response at once. */
  destroy(): void;
}

const CRLF = Buffer.from('\r\n', 'latin1');

// Every caught-up subscriber of a chunk (or of a heartbeat sweep) is written in one
// loop, so a one-entry cache frames each shared buffer once, not once per subscriber.
let lastPlain: Buffer | null = null;
let lastFramed: Buffer = CRLF;

/** `bytes` as one HTTP/1.1 chunk (size line, data, CRLF): what `res.write` would send, as one buffer. */
function httpChunk(bytes: Buffer): Buffer {
  if (bytes !== lastPlain) {
    lastFramed = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`, 'latin1'), bytes, CRLF]);
    lastPlain = bytes;
  }
  return lastFramed;
}

/**
 * node:http keeps a response's head (`_header`) for the life of the response,
 * as the rope of ~20 string pieces it was concatenated from: ~0.5 KB of heap
 * per open stream (bench/RESULTS.md, issue 21). Reading a character makes V8
 * flatten the rope in place into one string; nothing is changed.
 */
function flattenHead(res: ServerResponse): void {
  const head: unknown = (res as { _header?: unknown })._header;
  // Kept in a module variable so that an optimising compiler cannot drop the read as unused.
  if (typeof head === 'string' && head.length > 0) headReads ^= head.charCodeAt(0);
}
let headReads = 0;

const recheckDirect = (writer: Http1Writer): void => writer.recheckDirect();

/** Whether node has put the response's head on its socket (`_headerSent`; `headersSent` says only that it is built). */
function headerSent(res: ServerResponse): boolean {
  return (res as ServerResponse & { _headerSent?: boolean })._headerSent === true;
}

/** HTTP/1.1: writes go through res.write until it has put the head on the socket; then pre-framed chunks straight to the socket. */
class Http1Writer implements ResponseWriter {
  private readonly res: ServerResponse;
  // Set once the head is on the socket and the body is chunked; from then on a write goes to the socket itself
  // whenever the response holds nothing back (directSocket), so everything ends up in the one socket queue in order.
  private direct = false;
  private recheckQueued = false;

  constructor(res: ServerResponse) {
    this.res = res;
  }

  /**
   * The socket, when a write may go to it directly: the head is out, and the response holds nothing back. Node 24
   * holds each res.write (a replay's paced write) until the next tick, so a socket write in that tick would overtake
   * it (a review, 7 Dec 2026: a status written after the last replayed slice went out before it).
   */
  private directSocket(): Socket | null {
    return this.direct && this.res.writableCorked === 0 ? this.res.socket : null;
  }

  write(bytes: Buffer): void {
    const socket = this.directSocket();
    if (socket !== null) {
      // A zero-length chunk would end the body.
      if (bytes.length > 0) socket.write(httpChunk(bytes));
      return;
    }
    this.writePaced([bytes]);
  }

  writeChunk(chunk: Chunk): void {
    const socket = this.directSocket();
    if (socket === null) {
      this.writePaced([chunk.bytes]);
      return;
    }
    const framed = chunk.http1();
    // A chunk with a screenshot comes as its parts: the shared frames are not copied.
    if (Buffer.isBuffer(framed)) socket.write(framed);
    else writeCorked(socket, framed);
  }

  writePaced(parts: readonly Buffer[]): void {
    if (parts.length === 1) this.res.write(parts[0]!);
    else if (hasBigPart(parts)) writeCorked(this.res, parts);
    else this.res.write(Buffer.concat(parts));
    // The socket can take framed chunks once node has sent what this write left held back (the head with it): looked
    // at in a later turn, not at the stream's next write (the parser of an idle stream would be kept until then). An
    // HTTP/1.0 client's body is not chunked (decided at writeHead): res.write for good, with no look per write.
    if (this.direct || this.recheckQueued || !this.res.chunkedEncoding) return;
    this.recheckQueued = true;
    setImmediate(recheckDirect, this);
  }

  /** After node's own flush of the writes so far (`writePaced`): direct from here on, if the head is out. */
  recheckDirect(): void {
    this.recheckQueued = false;
    if (this.direct || !this.headOut()) return;
    this.direct = true;
    flattenHead(this.res);
    if (PARSER_RELEASE_SUPPORTED) releaseParser(this.res);
  }

  /**
   * Whether the head and every byte res.write took are on the socket, so that a socket write comes after them. Node 24
   * holds a response's first writes back, head included, until the next tick (the response is corked meanwhile):
   * a socket write in between went out before the head, and the client saw no HTTP answer (7 Dec 2026: 4 of 6 streams
   * opened at once, whose catch-up wrote a status at once).
   */
  private headOut(): boolean {
    const res = this.res;
    return res.socket !== null && headerSent(res) && res.writableCorked === 0;
  }

  writeParts(parts: readonly Buffer[]): void {
    const socket = this.directSocket();
    if (socket === null) {
      this.writePaced(parts);
      return;
    }
    if (!hasBigPart(parts)) {
      this.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
      return;
    }
    // A big frame (a screenshot) stays in the buffers it is shared in: one chunk, one corked writev.
    writeCorked(socket, [Buffer.from(`${totalLength(parts).toString(16)}\r\n`, 'latin1'), ...parts, CRLF]);
  }

  get unsentBytes(): number {
    return this.res.writableLength;
  }
  get needsDrain(): boolean {
    return this.res.writableNeedDrain;
  }
  get gone(): boolean {
    return this.res.destroyed;
  }

  end(closeConnection: boolean): void {
    if (this.res.writableEnded) return;
    if (!closeConnection) {
      this.res.end();
      return;
    }
    const socket = this.res.socket;
    this.res.end(() => socket?.end());
  }

  destroy(): void {
    this.res.destroy();
  }
}

/** HTTP/2 (and anything that is not a node:http response): plain res.write; the session frames it. */
class PlainWriter implements ResponseWriter {
  private readonly res: Http2ServerResponse;

  constructor(res: Http2ServerResponse) {
    this.res = res;
  }

  write(bytes: Buffer): void {
    if (bytes.length > 0) this.res.write(bytes);
  }

  writeChunk(chunk: Chunk): void {
    this.write(chunk.bytes);
  }

  writeParts(parts: readonly Buffer[]): void {
    if (!hasBigPart(parts)) this.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    else writeCorked(this.res, parts);
  }

  writePaced(parts: readonly Buffer[]): void {
    this.writeParts(parts);
  }

  get unsentBytes(): number {
    return this.res.writableLength;
  }
  get needsDrain(): boolean {
    return this.res.writableNeedDrain;
  }
  get gone(): boolean {
    return responseGone(this.res);
  }

  // An h2 stream ends on its own; the connection carries other streams and is closed by the server (GOAWAY).
  end(): void {
    if (!this.res.writableEnded) this.res.end();
  }

  // RST_STREAM with INTERNAL_ERROR, not NO_ERROR (what a plain destroy sends): the body was cut, perhaps within
  // a frame, and a client must not take that for the end of the stream.
  destroy(): void {
    const { stream } = this.res;
    if (!stream.destroyed && !stream.closed) stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    this.res.destroy();
  }
}

/** True for an HTTP/1.x response of node:http. */
export function isHttp1(res: StreamResponse): res is ServerResponse {
  return res instanceof ServerResponse;
}

/** True once `res` can take nothing more (the client reset or went away). */
export function responseGone(res: StreamResponse): boolean {
  // The HTTP/2 compatibility response has no `destroyed` of its own; its stream does.
  return isHttp1(res) ? res.destroyed : res.stream.destroyed;
}

/** The writer for `res`. */
export function createWriter(res: StreamResponse): ResponseWriter {
  return isHttp1(res) ? new Http1Writer(res) : new PlainWriter(res);
}

/** Response headers of every stream over HTTP/1.1. */
export const STREAM_HEADERS: OutgoingHttpHeaders = {
  // Both exactly CONTRACT.md section 3's values (a client may compare them whole; SSE is UTF-8 by definition).
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  // Once its parser is released (parser-release.ts) the connection cannot carry another
  // request: it closes when the stream ends, and says so up front.
  connection: PARSER_RELEASE_SUPPORTED ? 'close' : 'keep-alive',
  // nginx and similar proxies must not buffer a stream.
  'x-accel-buffering': 'no',
};

/** The same over HTTP/2, where connection-specific fields are illegal (RFC 9113 §8.2.2). */
export const STREAM_HEADERS_H2: OutgoingHttpHeaders = {
  'content-type': STREAM_HEADERS['content-type'],
  'cache-control': STREAM_HEADERS['cache-control'],
  'x-accel-buffering': 'no',
};

/**
 * The headers of a `HEAD` answer on a stream route: a stream's, without
 * `connection`. No stream (and no parser release) follows, so an HTTP/1.1
 * connection stays open for the next request.
 */
export const STREAM_HEAD_ANSWER_HEADERS: Readonly<Record<string, string>> = STREAM_HEADERS_H2 as Record<string, string>;

/** Writes a stream's `200` head with `extra` headers (CORS) and the protocol's stream headers. */
export function writeStreamHead(res: StreamResponse, extra: OutgoingHttpHeaders): void {
  if (isHttp1(res)) res.writeHead(200, { ...extra, ...STREAM_HEADERS });
  else res.writeHead(200, { ...extra, ...STREAM_HEADERS_H2 });
}

/**
 * Drops an open that shutdown overtook (the connection on HTTP/1.1, the stream on h2), as a refused
 * open is while stopping: EventSource retries elsewhere, where a 503 would stop it for good.
 */
export function dropOpen(res: StreamResponse): void {
  if (responseGone(res)) return;
  if (isHttp1(res)) res.socket?.destroy();
  else res.stream.close();
}
