/**
 * `@durable-streams/client` as the outside reader of pollcast's Durable
 * Streams: reads a session's stream to its close, recording every message
 * and the offsets it was given.
 */
import { createServer, request as httpRequest } from 'node:http';
import { stream, type LiveMode } from '@durable-streams/client';

/** What one reader saw. */
export interface DurableRead {
  items: any[];
  /** The Stream-Next-Offset of every batch, in order. */
  offsets: string[];
  closed: boolean;
}

/** Fast retries: a cut connection is retried at once from the same offset. */
export const QUICK_BACKOFF = { initialDelay: 20, maxDelay: 300, multiplier: 2 };

/** Event indices among the items (records have none). */
export const indicesOf = (items: readonly any[]) => items.filter((m) => typeof m.index === 'number').map((m) => m.index as number);

/** A reader's options: `live` false reads chunk by chunk with one-shot catch-up requests (the client's `live: false` makes one request). */
export interface ReadOptions {
  live: LiveMode;
  offset?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Stop (abort) once this holds for what was read; the caller resumes from the last offset. */
  stopWhen?: (r: DurableRead) => boolean;
  onBatch?: (r: DurableRead) => void;
}

/**
 * Reads `url` until the stream is closed (or `stopWhen` holds), bounded by
 * `timeoutMs`. When a connection fails under the client (a reset mid-body),
 * the read is resumed from the last offset the stream gave, as an
 * application persisting its offset would; `resumes` counts those.
 */
export async function readDurable(url: string, opts: ReadOptions): Promise<DurableRead & { resumes: number }> {
  const out: DurableRead & { resumes: number } = { items: [], offsets: [], closed: false, resumes: 0 };
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let offset = opts.offset ?? '-1';
  const take = (items: readonly unknown[], next: string, closed: boolean): boolean => {
    out.items.push(...items);
    out.offsets.push(next);
    offset = next;
    out.closed = closed;
    opts.onBatch?.(out);
    return closed || (opts.stopWhen?.(out) ?? false);
  };
  for (;;) {
    if (Date.now() > deadline) throw new Error(`durable read of ${url} (live=${String(opts.live)}) timed out with ${out.items.length} items, last offset ${offset}`);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), Math.max(1, deadline - Date.now()));
    try {
      const res = await stream({ url, offset, live: opts.live, json: true, headers: opts.headers, signal: abort.signal, backoffOptions: QUICK_BACKOFF });
      if (opts.live === false) {
        const items = await res.json();
        if (take(items, res.offset, res.streamClosed)) return out;
        continue;
      }
      const done = await new Promise<boolean>((resolve, reject) => {
        res.subscribeJson((batch) => {
          if (take(batch.items, batch.offset, batch.streamClosed)) resolve(true);
        });
        // A stream that ends without the close (an error, or the client giving up) is resumed by the loop.
        res.closed.then(() => setTimeout(() => resolve(false), 100), reject);
      });
      if (done) return out;
    } catch (err) {
      if (abort.signal.aborted) throw new Error(`durable read of ${url} (live=${String(opts.live)}) timed out with ${out.items.length} items, last offset ${offset}`, { cause: err });
      // A refusal is an answer, not a cut connection.
      const status = (err as { status?: number }).status;
      if (status !== undefined && status >= 400 && status < 500) throw err;
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    out.resumes++;
  }
}

/** An HTTP proxy that forwards everything as it is, with the request path rewritten. */
export interface RewriteProxy {
  url: string;
  close(): Promise<void>;
}

/**
 * Starts a proxy on 127.0.0.1 port 0 that forwards each request to `targetUrl`
 * with `rewrite(path)` as its path: how the conformance suite's stream URLs
 * (`/v1/stream/<name>`) reach pollcast's (`/v1/stream/sessions/<name>`).
 */
export function startRewriteProxy(targetUrl: string, rewrite: (path: string) => string): Promise<RewriteProxy> {
  const target = new URL(targetUrl);
  const server = createServer((req, res) => {
    const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: rewrite(req.url ?? '/'), headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => {
          server.closeAllConnections();
          return new Promise<void>((done) => server.close(() => done()));
        },
      });
    });
  });
}
