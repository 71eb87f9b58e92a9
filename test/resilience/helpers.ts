/**
 * Shared tools of the resilience and chaos tests: a log of every request the
 * simulator served (with the fault it injected), the request bounds implied
 * by the backoff policy and the rate gate, a raw SSE client that can stop
 * reading, and process-level gauges (heap after GC, active handles).
 */
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Fault, Simulator } from '../../src/simulator/index.ts';
import { backoffDelayMs, DEFAULT_BACKOFF, LOOP_REQUEST_BURST, LOOP_REQUESTS_PER_SECOND, type BackoffPolicy } from '../../src/upstream/backoff.ts';

/**
 * Every test client connects from 127.0.0.1, so the per-client stream and
 * rate limits (whose defaults suit the internet) are lifted in these tests;
 * names pollcast does not know are ignored by its configuration.
 */
export const ONE_ADDRESS_ENV: Readonly<Record<string, string>> = { MAX_STREAMS_PER_IP: '0', MAX_STREAMS_PER_SESSION: '0', RATE_LIMIT_PER_IP: '0' };

/** One request the simulator served for a session. */
export interface LoggedRequest {
  /** performance.now() when the request reached the simulator. */
  t: number;
  session: string;
  endpoint: 'changes' | 'status';
  /** The fault injected into it, if any. */
  fault: Fault | undefined;
}

/** Every authorized sessions-API request of a simulator, in arrival order. */
export interface RequestLog {
  readonly all: LoggedRequest[];
  of(session: string, endpoint?: 'changes' | 'status'): LoggedRequest[];
  /** Requests of `session` in [from, to] (performance.now() times). */
  between(session: string, from: number, to: number): LoggedRequest[];
}

type FaultHook = { take(session: string, endpoint: 'changes' | 'status'): Fault | undefined };

/**
 * Records requests by wrapping the fault plan's `take`, which the simulator
 * calls exactly once for each authorized `/changes` and `/status` request
 * (before it decides the answer), so the log is exact and synchronous.
 */
export function logRequests(sim: Simulator): RequestLog {
  const plan = sim.faults as unknown as FaultHook;
  const take = plan.take.bind(plan);
  const all: LoggedRequest[] = [];
  plan.take = (session, endpoint) => {
    const fault = take(session, endpoint);
    all.push({ t: performance.now(), session, endpoint, fault });
    return fault;
  };
  return {
    all,
    of: (session, endpoint) => all.filter((r) => r.session === session && (endpoint === undefined || r.endpoint === endpoint)),
    between: (session, from, to) => all.filter((r) => r.session === session && r.t >= from && r.t <= to),
  };
}

/** Shortest delay the loop may wait after its `attempt`-th consecutive failure (jitter drawn at its minimum). */
export function minRetryDelayMs(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, retryAfterMs?: number): number {
  return backoffDelayMs(attempt, policy, retryAfterMs, () => 0);
}

/** Longest such delay (jitter drawn at its maximum). */
export function maxRetryDelayMs(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, retryAfterMs?: number): number {
  return backoffDelayMs(attempt, policy, retryAfterMs, () => 1);
}

/**
 * Most requests a loop can make in `windowMs` while every request fails: the
 * first at once, then one after each minimal backoff delay (1-based attempts).
 */
export function maxFailingRequestsWithin(windowMs: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  let n = 1;
  let elapsed = 0;
  for (;;) {
    elapsed += minRetryDelayMs(n, policy);
    if (elapsed > windowMs) return n;
    n++;
  }
}

/** Most rate-gated requests a loop can make in `windowMs` (token bucket: a full burst, then the sustained rate). */
export function maxGatedRequestsWithin(windowMs: number): number {
  return LOOP_REQUEST_BURST + Math.floor((windowMs / 1000) * LOOP_REQUESTS_PER_SECOND) + 1;
}

/** Largest number of `times` (ms, ascending) inside any window of `windowMs`. */
export function maxInWindow(times: readonly number[], windowMs: number): number {
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < times.length; hi++) {
    while (times[hi]! - times[lo]! > windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/** One complete SSE frame (terminated by a blank line). */
export interface SseFrame {
  id?: string;
  event?: string;
  data?: string;
  comment?: boolean;
  retry?: number;
}

/** Parses the complete frames of an SSE text; a trailing unterminated frame is ignored, as EventSource does. */
export function parseSse(text: string): SseFrame[] {
  const blocks = text.replace(/\r\n?/g, '\n').split('\n\n');
  blocks.pop();
  const frames: SseFrame[] = [];
  for (const block of blocks) {
    const f: SseFrame = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        f.comment = true;
        continue;
      }
      const at = line.indexOf(':');
      const field = at === -1 ? line : line.slice(0, at);
      const value = at === -1 ? '' : line.slice(at + 1).replace(/^ /, '');
      if (field === 'id') f.id = value;
      else if (field === 'event') f.event = value;
      else if (field === 'data') f.data = f.data === undefined ? value : `${f.data}\n${value}`;
      else if (field === 'retry') f.retry = Number(value);
    }
    frames.push(f);
  }
  return frames;
}

/** Indices of the session events (frames with an id and no event field) in `frames`. */
export function eventIndices(frames: readonly SseFrame[]): number[] {
  return frames.filter((f) => f.event === undefined && f.id !== undefined && f.data !== undefined).map((f) => (JSON.parse(f.data!) as { index: number }).index);
}

/** A stream opened over a bare TCP socket, whose reading can be stopped. */
export interface RawStream {
  socket: Socket;
  /** Every byte received so far, as text (headers included). */
  text(): string;
  /** The body's complete SSE frames (chunked transfer coding removed). */
  frames(): SseFrame[];
  /** Resolves once the socket closed (either side). */
  closed: Promise<void>;
  /** Resolves once the received text satisfies `predicate` (bounded by `timeoutMs`). */
  until(predicate: (text: string) => boolean, timeoutMs?: number): Promise<void>;
}

/** Removes HTTP/1.1 chunked coding from a (possibly partial) body. */
export function dechunk(body: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol === -1) return out;
    const size = Number.parseInt(body.slice(at, eol), 16);
    if (!Number.isFinite(size) || size === 0) return out;
    const start = eol + 2;
    out += body.slice(start, Math.min(body.length, start + size));
    if (start + size + 2 > body.length) return out;
    at = start + size + 2;
  }
}

/**
 * Opens `GET path` on `baseUrl` over a raw socket (latin1 so a byte count is
 * a character count). With `paused`, the socket is never read: the kernel
 * buffers fill up and the server sees a subscriber that stopped reading.
 */
export function openRawStream(baseUrl: string, path: string, opts: { headers?: Record<string, string>; paused?: boolean } = {}): RawStream {
  const u = new URL(baseUrl);
  const socket = connect({ host: u.hostname, port: Number(u.port) });
  let text = '';
  const waiters = new Set<() => void>();
  socket.setEncoding('latin1');
  const head = [`GET ${path} HTTP/1.1`, `Host: ${u.host}`, 'Accept: text/event-stream', ...Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
  socket.write(head);
  if (opts.paused) socket.pause();
  socket.on('data', (d: string) => {
    text += d;
    for (const w of [...waiters]) w();
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const body = () => {
    const at = text.indexOf('\r\n\r\n');
    return at === -1 ? '' : dechunk(text.slice(at + 4));
  };
  return {
    socket,
    text: () => text,
    frames: () => parseSse(body()),
    closed,
    until(predicate, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        if (predicate(text)) return resolve();
        const check = () => {
          if (!predicate(text)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`raw stream: timed out after ${timeoutMs} ms with ${text.length} bytes`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
  };
}

let gcFn: (() => void) | undefined;

/** Runs a full garbage collection (exposing `gc` at run time, so no node flag is needed). */
export function collectGarbage(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
  gcFn();
}

/** Heap and buffer memory after a full GC (bytes). */
export function memoryAfterGc(): { heapUsed: number; arrayBuffers: number; rss: number } {
  collectGarbage();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, arrayBuffers: m.arrayBuffers, rss: m.rss };
}

/** Active handles and requests of the process, counted by type (TCPSocketWrap, Timeout, ...). */
export function activeResources(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
}

/** Resolves after `ms` (only to let time pass in a fault window; never used to force an ordering). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A free TCP port, for a server that must come back on the same port. */
export { freePort } from '../helpers/harness.ts';

/** MiB with one decimal, for printed figures. */
export const mib = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;
