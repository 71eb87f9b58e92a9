/** The load client's bare-socket HTTP/1.1 reader: its chunked decoder alone, and against a real node:http server. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkedDecoder, RawStream } from '../../bench/raw-stream.ts';

/** `text` in the chunked coding, cut into chunks of `sizes` (cycled), with the last chunk and its CRLF. */
function chunked(text: string, sizes: number[]): Buffer {
  const bytes = Buffer.from(text);
  const parts: Buffer[] = [];
  for (let at = 0, k = 0; at < bytes.length; k++) {
    const piece = bytes.subarray(at, at + sizes[k % sizes.length]!);
    // Upper-case hex and an extension on every other chunk: both are allowed by RFC 9112 §7.1.
    const size = k % 2 === 0 ? piece.length.toString(16).toUpperCase() : `${piece.length.toString(16)};ext=1`;
    parts.push(Buffer.from(`${size}\r\n`), piece, Buffer.from('\r\n'));
    at += piece.length;
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

describe('ChunkedDecoder', () => {
  const text = 'id: 0\ndata: {"a":1}\n\n'.repeat(40);

  it('gives back the body whatever the split of the coded bytes', () => {
    const coded = chunked(text, [1, 17, 300, 2]);
    for (let step = 1; step <= 9; step++) {
      const decoder = new ChunkedDecoder();
      const out: Buffer[] = [];
      for (let i = 0; i < coded.length; i += step) decoder.push(coded.subarray(i, i + step), (d) => out.push(Buffer.from(d)));
      expect(Buffer.concat(out).toString()).toBe(text);
      expect(decoder.done).toBe(true);
    }
  });

  it('hands on views of the read buffer when a chunk comes whole', () => {
    const coded = chunked('hello', [5]);
    const seen: Buffer[] = [];
    new ChunkedDecoder().push(coded, (d) => seen.push(d));
    expect(seen).toHaveLength(1);
    expect(seen[0]!.buffer).toBe(coded.buffer);
  });

  it('throws on a size that is not hex and on data longer than its size', () => {
    expect(() => new ChunkedDecoder().push(Buffer.from('zz\r\n'), () => {})).toThrow('bad chunk size');
    expect(() => new ChunkedDecoder().push(Buffer.from('2\r\nabc\r\n'), () => {})).toThrow('bad chunk end');
  });
});

describe('RawStream against node:http', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

  function listen(handler: Parameters<typeof createServer>[1]): Promise<number> {
    server = createServer(handler);
    return new Promise((resolve) => server!.listen(0, '127.0.0.1', () => resolve((server!.address() as AddressInfo).port)));
  }

  function read(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; error: NodeJS.ErrnoException | null }> {
    return new Promise((resolve) => {
      let status = 0;
      const body: Buffer[] = [];
      new RawStream(
        { host: '127.0.0.1', port, path, headers, headTimeoutMs: 5_000 },
        {
          onHead: (s) => (status = s),
          onBody: (b) => body.push(Buffer.from(b)),
          onClose: (error) => resolve({ status, body: Buffer.concat(body).toString(), error }),
        },
      );
    });
  }

  it('reads a chunked event stream written in several writes, sends its headers, and closes at the last chunk', async () => {
    const seen: Record<string, string | undefined> = {};
    const port = await listen((req, res) => {
      seen.lastEventId = req.headers['last-event-id'] as string | undefined;
      seen.accept = req.headers.accept;
      seen.path = req.url;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('retry: 2000\n\n');
      let n = 0;
      const timer = setInterval(() => {
        res.write(`id: ${n}\ndata: {"n":${n}}\n\n`);
        if (++n === 3) {
          clearInterval(timer);
          res.end();
        }
      }, 5);
    });
    const got = await read(port, '/sessions/s1/events?x=1', { accept: 'text/event-stream', 'last-event-id': '7' });
    expect(got.status).toBe(200);
    expect(got.error).toBeNull();
    expect(got.body).toBe('retry: 2000\n\nid: 0\ndata: {"n":0}\n\nid: 1\ndata: {"n":1}\n\nid: 2\ndata: {"n":2}\n\n');
    expect(seen).toEqual({ lastEventId: '7', accept: 'text/event-stream', path: '/sessions/s1/events?x=1' });
  });

  it('reports a non-200 status, and reads a body that is not chunked to the close', async () => {
    const port = await listen((req, res) => {
      if (req.url === '/missing') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no"}');
        return;
      }
      res.writeHead(200, { 'content-length': '5', connection: 'close' }).end('hello');
    });
    expect((await read(port, '/missing')).status).toBe(404);
    const plain = await read(port, '/plain');
    expect(plain).toEqual({ status: 200, body: 'hello', error: null });
  });

  it('reports a refused connection as an error', async () => {
    const port = await listen(() => {});
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    const got = await read(port, '/');
    expect(got.status).toBe(0);
    expect(got.error?.code).toBe('ECONNREFUSED');
  });
});
