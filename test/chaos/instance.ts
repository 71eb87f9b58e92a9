/**
 * A pollcast under chaos: in this process (`startPollcast`, stopped with
 * `close()`, counters read directly) or as a real process (`node
 * src/cli.ts`, stopped with SIGTERM, counters scraped from /metrics). Both
 * listen on a fixed port, so a successor can take over the same address.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast } from '../../src/server.ts';
import { freePort, listenerIsProcess } from '../helpers/harness.ts';

/** Counters of one pollcast instance (what the summary reports). */
export interface InstanceCounters {
  streamsOpened: number;
  slowDropped: number;
  replayFromBuffer: number;
  replayFromUpstream: number;
  framesDelivered: number;
}

/** A running pollcast. */
export interface Instance {
  readonly url: string;
  /** The process's pid (process mode). */
  readonly pid?: number;
  counters(): Promise<InstanceCounters>;
  /** Graceful stop (server.close() or SIGTERM); resolves once it stopped listening and its streams ended. */
  stop(): Promise<void>;
  /** A crash (SIGKILL; process mode only): no goodbye to anyone; resolves once the process is gone. */
  kill(): Promise<void>;
}

export type InstanceMode = 'in-process' | 'process';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

/** Longest wait for a started process to answer /healthz (ms). */
const START_WAIT_MS = 30_000;

/** The port was taken by another process before pollcast could bind it (a free port is only free until someone binds it). */
export class PortTakenError extends Error {}

/** startInstance on a port of its own: a new free port again while the one chosen turns out taken (up to 5 tries). */
export async function startInstanceOnFreePort(mode: InstanceMode, env: Record<string, string>): Promise<{ instance: Instance; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return { instance: await startInstance(mode, port, env), port };
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt === 5) throw err;
    }
  }
}

/** Starts pollcast on 127.0.0.1:`port` with `env` (UPSTREAM_URL and friends). */
export async function startInstance(mode: InstanceMode, port: number, env: Record<string, string>): Promise<Instance> {
  const full = { ...env, PORT: String(port), HOST: '127.0.0.1' };
  if (mode === 'in-process') {
    const server = await startPollcast(loadConfig({ LOG_LEVEL: 'silent', ...full }), { log: silentLogger(), processMetrics: false }).catch((err: unknown) => {
      throw (err as { code?: string }).code === 'EADDRINUSE' ? new PortTakenError(`port ${port} is taken`) : err;
    });
    return {
      url: server.url,
      counters: async () => {
        const s = server.metrics.stats;
        return { streamsOpened: s.streamsOpened, slowDropped: s.slowDropped, replayFromBuffer: s.replayFromBuffer, replayFromUpstream: s.replayFromUpstream, framesDelivered: s.framesDelivered };
      },
      stop: () => server.close(),
      kill: () => Promise.reject(new Error('kill() needs a process instance')),
    };
  }
  // CHAOS_LOG_DIR=dir keeps each process's log (stdout, at CHAOS_LOG_LEVEL or warn) in dir/pollcast-<port>.log.
  const logDir = process.env.CHAOS_LOG_DIR;
  const logLevel = process.env.CHAOS_LOG_LEVEL ?? 'warn';
  const child = spawn(process.execPath, [CLI], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: logLevel, ...full }, stdio: ['ignore', logDir ? 'pipe' : 'ignore', 'pipe'] });
  if (logDir) child.stdout!.pipe(createWriteStream(`${logDir}/pollcast-${port}.log`, { flags: 'a' }));
  const stderrTail: string[] = [];
  child.stderr!.on('data', (d: Buffer) => {
    stderrTail.push(d.toString());
    if (stderrTail.length > 20) stderrTail.shift();
  });
  const url = `http://127.0.0.1:${port}`;
  // Usually well under a second; 15 s was too little once, for a child that printed nothing, with other work on the
  // machine's two cores (CI, 7 Dec 2026).
  const deadline = Date.now() + START_WAIT_MS;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  for (;;) {
    if (exited()) {
      const tail = stderrTail.join('');
      if (/already in use|EADDRINUSE/.test(tail)) throw new PortTakenError(`port ${port} is taken: ${tail}`);
      throw new Error(`pollcast exited (${child.exitCode ?? child.signalCode}) at start: ${tail}`);
    }
    const ok = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
    // An answer counts once this child holds the port (another process may answer /healthz there).
    if (ok && listenerIsProcess(child.pid!, port) !== false) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`pollcast did not answer /healthz within ${START_WAIT_MS / 1000} s: ${stderrTail.join('')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  let last: InstanceCounters = { streamsOpened: 0, slowDropped: 0, replayFromBuffer: 0, replayFromUpstream: 0, framesDelivered: 0 };
  const scrape = async (): Promise<InstanceCounters> => {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const sum = (name: string, label?: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(name) && (label === undefined || l.includes(label)))
        .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    last = {
      streamsOpened: sum('pollcast_streams_opened_total'),
      slowDropped: sum('pollcast_slow_subscribers_dropped_total'),
      replayFromBuffer: sum('pollcast_replays_total', 'source="buffer"'),
      replayFromUpstream: sum('pollcast_replays_total', 'source="upstream"'),
      framesDelivered: sum('pollcast_frames_delivered_total'),
    };
    return last;
  };
  let stopped = false;
  return {
    url,
    pid: child.pid,
    counters: () => (stopped ? Promise.resolve(last) : scrape()),
    async stop() {
      if (stopped) return;
      await scrape().catch(() => last);
      stopped = true;
      if (exited()) throw new Error(`pollcast on port ${port} exited (${child.exitCode ?? child.signalCode}) before stop: ${stderrTail.join('')}`);
      const gone = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 12_000);
      const [code] = (await gone) as [number | null];
      clearTimeout(timer);
      if (code !== 0) throw new Error(`pollcast exited ${code} on SIGTERM: ${stderrTail.join('')}`);
    },
    async kill() {
      if (stopped) return;
      stopped = true;
      if (exited()) return;
      const gone = once(child, 'exit');
      child.kill('SIGKILL');
      await gone;
    },
  };
}
