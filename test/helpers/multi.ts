/**
 * Tools of the multiplexed-stream tests: a real `eventsource` client that
 * records a stream of several sessions (closing once every session ended),
 * a raw reader of the whole body, and a TCP proxy that can reset every
 * connection it carries.
 */
import { connect, createServer, type Socket } from 'node:net';
import { EventSource } from 'eventsource';
import { waitUntil } from './harness.ts';

/** One frame of a multiplexed stream, as EventSource dispatched it. */
export interface MuxFrame {
  type: 'message' | 'status' | 'end';
  /** The SSE id in force when it was dispatched (the cursor). */
  id: string;
  data: any;
}

/** An EventSource on a multiplexed stream that records every frame. */
export interface MultiRecorder {
  es: EventSource;
  frames: MuxFrame[];
  /** Connections opened (1, plus one per reconnect). */
  opens(): number;
  /** The frames of one session, in order. */
  of(sessionId: string): MuxFrame[];
  /** Event indices of one session, in order. */
  indices(sessionId: string): number[];
  /** Resolves once every session's `end` arrived (bounded). */
  allEnded(timeoutMs?: number): Promise<void>;
  /** Resolves once `predicate` holds (bounded). */
  until(predicate: (r: MultiRecorder) => boolean, timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Opens a real EventSource on a multiplexed stream of `sessionIds`; it closes itself once every session ended. */
export function recordMany(url: string, sessionIds: readonly string[], init?: { headers?: Record<string, string>; fetch?: typeof fetch }): MultiRecorder {
  const withHeaders = (i: RequestInit | undefined): Headers => {
    const h = new Headers(init?.headers);
    // The library's own headers win: on a reconnect it sends the Last-Event-ID it saw.
    new Headers(i?.headers).forEach((v, k) => h.set(k, v));
    return h;
  };
  const baseFetch = init?.fetch ?? fetch;
  const es = new EventSource(url, init?.headers || init?.fetch ? { fetch: (input, i) => baseFetch(input, { ...i, headers: withHeaders(i) }) } : undefined);
  const frames: MuxFrame[] = [];
  const ended = new Set<string>();
  const waiters = new Set<() => void>();
  let opens = 0;
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  const push = (type: MuxFrame['type'], e: MessageEvent) => {
    const data = JSON.parse(e.data as string);
    frames.push({ type, id: e.lastEventId, data });
    if (type === 'end') {
      ended.add(data.session as string);
      if (sessionIds.every((s) => ended.has(s))) es.close();
    }
    notify();
  };
  es.onopen = () => {
    opens++;
    notify();
  };
  es.onmessage = (e) => push('message', e);
  es.addEventListener('status', (e) => push('status', e));
  es.addEventListener('end', (e) => push('end', e));
  const r: MultiRecorder = {
    es,
    frames,
    opens: () => opens,
    of: (id) => frames.filter((f) => f.data.session === id),
    indices: (id) => frames.filter((f) => f.type === 'message' && f.data.session === id).map((f) => f.data.index as number),
    allEnded: (timeoutMs = 20_000) => r.until(() => sessionIds.every((s) => ended.has(s)), timeoutMs),
    until(predicate, timeoutMs = 20_000) {
      const missing = () => sessionIds.filter((s) => !ended.has(s)).slice(0, 5).join(', ');
      return waitUntil(waiters, () => predicate(r), timeoutMs, () => `${frames.length} frames, ${opens} opens, not ended: ${missing()}`);
    },
    close: () => es.close(),
  };
  return r;
}

/** A whole response body, read to its end (bounded). */
export async function readAll(res: Response, timeoutMs = 20_000): Promise<string> {
  const timer = setTimeout(() => void res.body?.cancel(), timeoutMs);
  try {
    return await res.text();
  } finally {
    clearTimeout(timer);
  }
}

/** The frames of an SSE text: each with its fields (`event`, `id`, `data`). */
export function parseSse(text: string): Array<{ event?: string; id?: string; data?: string; retry?: string; comment?: boolean }> {
  return text
    .split('\n\n')
    .filter((block) => block.length > 0)
    .map((block) => {
      const out: { event?: string; id?: string; data?: string; retry?: string; comment?: boolean } = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) out.comment = true;
        else if (line.startsWith('event: ')) out.event = line.slice(7);
        else if (line.startsWith('id: ')) out.id = line.slice(4);
        else if (line.startsWith('retry: ')) out.retry = line.slice(7);
        else if (line.startsWith('data: ')) out.data = (out.data === undefined ? '' : `${out.data}\n`) + line.slice(6);
      }
      return out;
    });
}

/** A TCP proxy in front of `target` whose connections can all be reset at once. */
export interface TcpProxy {
  url: string;
  /** Connections accepted so far. */
  accepted(): number;
  /** Resets (RST) every open connection on both sides; returns how many. */
  resetAll(): number;
  close(): Promise<void>;
}

/** Starts a TCP proxy on 127.0.0.1 port 0 forwarding to `targetUrl`'s host and port. */
export function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    const upstream = connect(Number(target.port), target.hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      resolve({
        url: `http://127.0.0.1:${port}`,
        accepted: () => accepted,
        resetAll() {
          const n = pairs.size;
          for (const [client, upstream] of [...pairs]) {
            client.resetAndDestroy();
            upstream.resetAndDestroy();
          }
          pairs.clear();
          return n;
        },
        close() {
          for (const [client, upstream] of pairs) {
            client.destroy();
            upstream.destroy();
          }
          return new Promise<void>((done) => server.close(() => done()));
        },
      });
    });
  });
}

/** `?session=a&session=b…` for `ids`. */
export const sessionQuery = (ids: readonly string[]) => ids.map((id) => `session=${encodeURIComponent(id)}`).join('&');
