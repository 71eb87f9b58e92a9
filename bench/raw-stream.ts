/**
 * The load client's HTTP/1.1 reader of one SSE stream, on a bare `net`
 * socket: it sends the GET, reads the status line and headers, and hands on
 * the body with the chunked transfer coding taken off. The benchmark's client
 * must read faster than the servers it measures can write; node:http's client
 * (its parser, the response stream and its 'data' events) made it the slower
 * side at 20,000 streams on one core (bench/RESULTS.md, issue 21, twelfth
 * round). Only what the two servers under test send is understood: one
 * response per connection, chunked or read to close.
 */
import { connect, type Socket } from 'node:net';

/** What a stream reports to its owner. */
export interface RawStreamHandlers {
  /** The head arrived: the status code (any but 200 closes the connection). */
  onHead(status: number): void;
  /** Body bytes, de-chunked (any split). */
  onBody(bytes: Buffer): void;
  /** The socket closed or failed (`error` when it failed before or during the body). */
  onClose(error: NodeJS.ErrnoException | null): void;
}

export interface RawStreamOptions {
  host: string;
  port: number;
  path: string;
  headers: Record<string, string>;
  localAddress?: string;
  /** Gives up when no head arrived in this time (ms). */
  headTimeoutMs: number;
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const CR = 0x0d;
const LF = 0x0a;

// Decoder states: reading a chunk-size line, inside a chunk's data, at the CRLF after it, past the last chunk.
const SIZE = 0;
const DATA = 1;
const DATA_END = 2;
const DONE = 3;

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Takes HTTP/1.1's chunked transfer coding off a body read in any split (no trailers expected). */
export class ChunkedDecoder {
  private state = SIZE;
  /** Bytes left in the current chunk (DATA), or the size being read (SIZE). */
  private left = 0;
  /** A chunk-size line's extension (after `;`) is being skipped. */
  private inExtension = false;

  /** True once the last (zero-size) chunk was read. */
  get done(): boolean {
    return this.state === DONE;
  }

  /**
   * Decodes `buf`, handing each piece of data to `onData` (views on `buf`, not
   * copies). Throws on a malformed size line or chunk end.
   */
  push(buf: Buffer, onData: (data: Buffer) => void): void {
    let at = 0;
    while (at < buf.length && this.state !== DONE) {
      if (this.state === DATA) {
        const n = Math.min(this.left, buf.length - at);
        onData(at === 0 && n === buf.length ? buf : buf.subarray(at, at + n));
        at += n;
        this.left -= n;
        if (this.left === 0) this.state = DATA_END;
        continue;
      }
      const c = buf[at++]!;
      if (this.state === DATA_END) {
        // The CRLF after a chunk's data (possibly split across reads).
        if (c === LF) this.state = SIZE;
        else if (c !== CR) throw new Error('bad chunk end');
      } else if (c === LF) {
        this.inExtension = false;
        this.state = this.left === 0 ? DONE : DATA;
      } else if (c === CR || this.inExtension) {
        // Skipped.
      } else if (c === 0x3b) {
        this.inExtension = true;
      } else {
        const v = hexValue(c);
        if (v < 0) throw new Error('bad chunk size');
        this.left = this.left * 16 + v;
      }
    }
  }
}

/** One stream's connection. */
export class RawStream {
  readonly socket: Socket;
  private readonly handlers: RawStreamHandlers;
  private head: Buffer | null = Buffer.alloc(0);
  /** null: the body is read to the connection's close. */
  private decoder: ChunkedDecoder | null = null;
  private readonly onData = (data: Buffer): void => this.handlers.onBody(data);
  private closed = false;

  constructor(options: RawStreamOptions, handlers: RawStreamHandlers) {
    this.handlers = handlers;
    const lines = [`GET ${options.path} HTTP/1.1`, `Host: ${options.host}:${options.port}`];
    for (const [k, v] of Object.entries(options.headers)) lines.push(`${k}: ${v}`);
    const request = `${lines.join('\r\n')}\r\n\r\n`;
    this.socket = connect({ host: options.host, port: options.port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) }, () => {
      this.socket.write(request);
    });
    this.socket.setTimeout(options.headTimeoutMs, () => this.fail('open timeout'));
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.close(err));
    this.socket.on('close', () => this.close(null));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private close(error: NodeJS.ErrnoException | null): void {
    if (this.closed) return;
    this.closed = true;
    this.handlers.onClose(error);
  }

  private read(chunk: Buffer): void {
    if (this.head !== null) {
      const buf = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
      const end = buf.indexOf(HEAD_END);
      if (end < 0) {
        this.head = buf;
        return;
      }
      this.head = null;
      this.socket.setTimeout(0);
      const headText = buf.toString('latin1', 0, end);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headText)?.[1] ?? 0);
      if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(headText)) this.decoder = new ChunkedDecoder();
      this.handlers.onHead(status);
      // Only a 200 carries a stream; anything else ends the connection here.
      if (status !== 200) return void this.socket.destroy();
      chunk = buf.subarray(end + HEAD_END.length);
      if (chunk.length === 0) return;
    }
    if (this.decoder === null) {
      this.handlers.onBody(chunk);
      return;
    }
    try {
      this.decoder.push(chunk, this.onData);
    } catch (err) {
      this.fail((err as Error).message);
      return;
    }
    // The last chunk: the response is over.
    if (this.decoder.done) this.socket.end();
  }

  private fail(message: string): void {
    this.socket.destroy(Object.assign(new Error(message), { code: message }));
  }
}
