/**
 * Test harness: a real simulator and a real pollcast, each on its own port 0
 * socket, and a real `eventsource` client that records what it receives.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { EventSource } from 'eventsource';
import { createSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/index.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';

/** A simulator plus a pollcast bridging it. */
export interface Bridge {
  sim: Simulator;
  server: PollcastServer;
  url: string;
  config: Config;
  close(): Promise<void>;
}

/** Starts a simulator and a pollcast on it; `env` overrides configuration variables. */
export async function startBridge(env: Record<string, string> = {}, simOptions: SimulatorOptions = {}): Promise<Bridge> {
  const sim = await createSimulator({ demo: false, ...simOptions });
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'silent', ...env });
  const server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
  return {
    sim,
    server,
    url: server.url,
    config,
    async close() {
      await server.close();
      await sim.close();
    },
  };
}

/** One received SSE message. */
export interface Received {
  type: string;
  id: string;
  data: any;
}

/** An EventSource that records every message, status and end event. */
export interface Recorder {
  es: EventSource;
  messages: Received[];
  /** Indices of the session events received, in order. */
  indices(): number[];
  statuses(): any[];
  /** Resolves with the `end` payload (bounded by `timeoutMs`). */
  ended(timeoutMs?: number): Promise<any>;
  /** Resolves once `predicate` holds for the recorder (bounded by `timeoutMs`). */
  until(predicate: (r: Recorder) => boolean, timeoutMs?: number): Promise<void>;
  close(): void;
}

/**
 * Opens a real EventSource on `url` and records what arrives. `init.fetch`
 * replaces the fetch it connects with (a test's load balancer picks the
 * instance there, on every reconnect).
 */
export function record(url: string, init?: { headers?: Record<string, string>; fetch?: typeof fetch; events?: readonly string[] }): Recorder {
  // The library's own headers win: on a reconnect it sends the Last-Event-ID it saw, which must replace ours.
  const withHeaders = (i: RequestInit | undefined): Headers => {
    const h = new Headers(init?.headers);
    new Headers(i?.headers).forEach((v, k) => h.set(k, v));
    return h;
  };
  const connect = init?.fetch ?? fetch;
  const es = new EventSource(url, init?.headers || init?.fetch ? { fetch: (input, i) => connect(input, { ...i, headers: withHeaders(i) }) } : undefined);
  const messages: Received[] = [];
  const waiters = new Set<() => void>();
  const push = (type: string, e: MessageEvent) => {
    messages.push({ type, id: e.lastEventId, data: JSON.parse(e.data as string) });
    for (const w of [...waiters]) w();
  };
  es.onmessage = (e) => push('message', e);
  es.addEventListener('status', (e) => push('status', e));
  // Streams with events of their own (the session list's snapshot, upsert, remove).
  for (const name of init?.events ?? []) es.addEventListener(name, (e) => push(name, e));
  es.addEventListener('end', (e) => {
    push('end', e);
    es.close();
  });
  const r: Recorder = {
    es,
    messages,
    indices: () => messages.filter((m) => m.type === 'message').map((m) => m.data.index as number),
    statuses: () => messages.filter((m) => m.type === 'status').map((m) => m.data),
    async ended(timeoutMs = 15_000) {
      await r.until((x) => x.messages.some((m) => m.type === 'end'), timeoutMs);
      return messages.find((m) => m.type === 'end')!.data;
    },
    until(predicate, timeoutMs = 15_000) {
      return waitUntil(waiters, () => predicate(r), timeoutMs, () => `received ${messages.length} messages: ${JSON.stringify(messages.slice(-3).map((m) => m.type + ':' + m.id))}`);
    },
    close: () => es.close(),
  };
  return r;
}

/**
 * Resolves once `ready()` holds, checked now and by each function the caller
 * runs from `waiters` when something arrives; rejects after `timeoutMs` with
 * `state()` in the message.
 */
export function waitUntil(waiters: Set<() => void>, ready: () => boolean, timeoutMs: number, state: () => string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (ready()) return resolve();
    const check = () => {
      if (!ready()) return;
      clearTimeout(timer);
      waiters.delete(check);
      resolve();
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`timed out after ${timeoutMs} ms; ${state()}`));
    }, timeoutMs);
    waiters.add(check);
  });
}

/** Resolves once `predicate()` is true, polling every 10 ms; rejects after `timeoutMs`. */
export async function eventually(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** 0..n-1 */
export const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

/** A free TCP port on 127.0.0.1 (bound, read, released): nothing listens there until someone binds it. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Whether the socket listening on 127.0.0.1:`port` belongs to process `pid` (Linux: /proc/net/tcp's listening
 * socket inode among the process's open files); undefined where /proc cannot say. Another test file's server can
 * take a port between `freePort()` and the child's bind, and would then answer the child's /healthz.
 */
export function listenerIsProcess(pid: number, port: number): boolean | undefined {
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set<string>();
  let table: string;
  try {
    table = readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return undefined; // no /proc: nothing to tell by
  }
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[1]!.endsWith(portHex) && f[3] === '0A') inodes.add(`socket:[${f[9]}]`);
  }
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false; // the process is gone (it may have exited on a taken port while another process answered)
  }
  return fds.some((fd) => {
    try {
      return inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      return false; // closed meanwhile
    }
  });
}

/**
 * The body of a GET read to its end by node:http, whose parser fails the
 * response on any malformed chunk (an EventSource would reconnect and resume,
 * hiding it).
 */
export function strictGet(url: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (text += s));
      res.on('end', () => resolve(text));
      res.on('error', reject);
    }).on('error', reject);
  });
}
