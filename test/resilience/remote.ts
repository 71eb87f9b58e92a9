/**
 * The simulator in a child process, driven through its `/_sim/` control API,
 * and a pollcast in this process bridging it. Memory measurements of the
 * resilience tests use this split, so the upstream's own copy of every event
 * is not counted as pollcast's heap.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { EventSource } from 'eventsource';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import type { SessionEvent, SessionSpec, SessionStats } from '../../src/simulator/index.ts';

const SIM_CLI = new URL('../../src/simulator/cli.ts', import.meta.url).pathname;

/** A simulator process and the calls of its control API the tests need. */
export interface RemoteSim {
  url: string;
  createSession(id: string, spec?: SessionSpec): Promise<void>;
  appendEvents(id: string, count: number): Promise<number[]>;
  finish(id: string): Promise<void>;
  events(id: string): Promise<SessionEvent[]>;
  stats(id: string): Promise<SessionStats>;
  close(): Promise<void>;
}

async function control<T>(base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${base}/_sim/${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const json = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(`simulator ${method} ${path}: ${res.status} ${json.error ?? ''}`);
  return json;
}

/** Starts `node src/simulator/cli.ts --port 0` and resolves once it printed its URL (bounded). */
export async function spawnSimulator(args: string[] = []): Promise<RemoteSim> {
  const child: ChildProcess = spawn(process.execPath, [SIM_CLI, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('simulator did not start within 10 s')), 10_000);
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      clearTimeout(timer);
      lines.close();
      resolve((JSON.parse(line) as { simulator: string }).simulator);
    });
    child.once('exit', (code) => reject(new Error(`simulator exited (${code}) before listening`)));
  });
  return {
    url,
    createSession: (id, spec = {}) => control(url, 'POST', 'sessions', { id, ...spec }).then(() => undefined),
    appendEvents: (id, count) => control<{ indices: number[] }>(url, 'POST', `sessions/${encodeURIComponent(id)}/events`, { count }).then((r) => r.indices),
    finish: (id) => control(url, 'POST', `sessions/${encodeURIComponent(id)}/finish`, {}).then(() => undefined),
    events: (id) => control<{ events: SessionEvent[] }>(url, 'GET', `sessions/${encodeURIComponent(id)}/events`).then((r) => r.events),
    stats: (id) => control<SessionStats>(url, 'GET', `stats/${encodeURIComponent(id)}`),
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Starts a pollcast in this process on `upstreamUrl`; `env` overrides configuration variables. */
export function startPollcastOn(upstreamUrl: string, env: Record<string, string> = {}): Promise<PollcastServer> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: upstreamUrl, AUTH: 'none', LOG_LEVEL: 'silent', ...env });
  return startPollcast(config, { log: silentLogger(), processMetrics: false });
}

/** An EventSource that keeps only the indices it receives (no payloads, so it costs the test process almost no memory). */
export interface IndexReader {
  es: EventSource;
  indices: number[];
  statuses: number;
  /** Resolves once `end` arrived (then the source is closed); rejects after `timeoutMs`. */
  ended(timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Opens an index-only reader on `url`. */
export function readIndices(url: string): IndexReader {
  const es = new EventSource(url);
  const indices: number[] = [];
  let resolveEnd!: () => void;
  const end = new Promise<void>((resolve) => (resolveEnd = resolve));
  const reader: IndexReader = {
    es,
    indices,
    statuses: 0,
    ended(timeoutMs = 15_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no end within ${timeoutMs} ms; ${indices.length} events received`)), timeoutMs);
      });
      return Promise.race([end, timeout]).finally(() => clearTimeout(timer));
    },
    close: () => es.close(),
  };
  es.onmessage = (e) => {
    // The index is the SSE id: no need to parse (and keep) the payload.
    indices.push(Number(e.lastEventId));
  };
  es.addEventListener('status', () => reader.statuses++);
  es.addEventListener('end', () => {
    es.close();
    resolveEnd();
  });
  return reader;
}
