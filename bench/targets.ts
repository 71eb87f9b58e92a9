/**
 * The servers under test, fresh processes per measurement pinned to the
 * server core: pollcast (`src/cli.ts`), the naive baseline
 * (`bench/baseline.ts`), and a pollcast cluster (three `src/cli.ts` processes
 * and the redis-server they share), all fed by the same simulator.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPTIONS } from '../src/config.ts';
import { NODE_FLAGS, V8_RUNTIME_FLAGS } from '../src/runtime-flags.ts';
import { CAN_PIN, delay, firstJsonLine, freePort, startService, stopProcess } from './processes.ts';

/** The servers under test, and `hop`: no server, a probe long-polling the simulator as they do (bench/hop.ts). */
export type TargetName = 'pollcast' | 'baseline' | 'cluster' | 'hop';

/** pollcast processes of the cluster target. */
export const CLUSTER_SIZE = 3;

/** A running server under test. */
export interface Target {
  name: TargetName;
  /** Every process of the server side (a cluster: its pollcast processes and redis-server); CPU and memory are summed over them. */
  pids: number[];
  /** The redis-server's pid (cluster only): its share of the CPU is reported on its own too. */
  redisPid: number | null;
  host: string;
  /** Where streams are opened; a cluster's streams are spread evenly over its instances. */
  ports: number[];
  stop(): Promise<void>;
}

export interface TargetOptions {
  upstreamUrl: string;
  core: number | null;
  cwd: string;
  /** Directory for `--cpu-prof` output, or null for no profile. */
  profileDir: string | null;
  /** Extra node flags for the server process (experiments, e.g. --max-semi-space-size=1). */
  nodeFlags?: string[];
  /** Extra environment of the server's node processes (the memory probe's). */
  env?: Record<string, string>;
  /** pollcast's entry point: `src/cli.ts` (default) or the build's `dist/cli.js`, as the Dockerfile runs it. */
  pollcastEntry?: string;
  /** The naive server's entry point: `bench/baseline.ts` (default) or its JavaScript (`baselineAsJavaScript`). */
  baselineEntry?: string;
}

/** Where `npm run dev` starts pollcast; the build (`npm run build`) starts from POLLCAST_BUILT_ENTRY. */
export const POLLCAST_SOURCE_ENTRY = 'src/cli.ts';
export const POLLCAST_BUILT_ENTRY = 'dist/cli.js';
/** The naive server as TypeScript, run by node's type stripping. */
export const BASELINE_SOURCE_ENTRY = 'bench/baseline.ts';
/** The Node flags of both servers: pollcast's deployed ones and those it sets on itself (src/runtime-flags.ts). */
const SERVER_FLAGS: readonly string[] = [...NODE_FLAGS, ...V8_RUNTIME_FLAGS];

/**
 * The naive server as plain JavaScript, for a comparison with the build
 * (`dist/cli.js`): both servers then run JavaScript, neither pays for node's
 * type stripper (its ~10 MB would otherwise count against the naive server
 * only). Its two files have their types stripped (node:module) into a
 * temporary directory; returns the entry's path.
 */
export function baselineAsJavaScript(cwd: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pollcast-bench-baseline-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  for (const name of ['baseline', 'naive-long-poll']) {
    const source = readFileSync(join(cwd, 'bench', `${name}.ts`), 'utf8');
    const js = stripTypeScriptTypes(source, { mode: 'strip' }).replaceAll("from './naive-long-poll.ts'", "from './naive-long-poll.mjs'");
    if (/from '\.[^']*\.ts'/.test(js)) throw new Error(`bench/${name}.ts imports a file baselineAsJavaScript does not convert`);
    writeFileSync(join(dir, `${name}.mjs`), js);
  }
  return join(dir, 'baseline.mjs');
}

/** Per-IP, per-session and total stream limits pollcast has (or is getting): lifted for a load test from one address. */
const LIFTED_LIMITS = ['MAX_STREAMS', 'MAX_STREAMS_PER_IP', 'MAX_STREAMS_PER_SESSION', 'RATE_LIMIT_PER_IP', 'RATE_LIMIT_BURST', 'MAX_SESSIONS'];
const LIFT_CANDIDATES = [1_000_000, 100_000, 65_535, 50_000, 25_000];

/**
 * Each limit lifted: `0` where pollcast documents it as "no limit", else the
 * largest candidate its schema accepts; limits pollcast does not define (yet)
 * are set anyway, and ignored.
 */
export function liftedLimitEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of LIFTED_LIMITS) {
    const opt = OPTIONS.find((o) => o.env === name);
    if (opt && /0 = no limit/.test(opt.help) && opt.schema.safeParse('0').success) {
      env[name] = '0';
      continue;
    }
    const value = opt ? LIFT_CANDIDATES.find((v) => opt.schema.safeParse(String(v)).success) : LIFT_CANDIDATES[0];
    if (value !== undefined) env[name] = String(value);
  }
  return env;
}

/** Start attempts (a free port may be taken by another process before the child binds it). */
const START_ATTEMPTS = 3;

async function waitHealthy(url: string, child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`pollcast exited (${child.exitCode ?? child.signalCode}) at start`);
    try {
      const res = await fetch(`${url}/healthz`);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await delay(100);
  }
  await stopProcess(child, 'SIGKILL', 1_000);
  throw new Error(`pollcast did not answer ${url}/healthz within ${timeoutMs} ms`);
}

/** Starts `name` on a free port and resolves once it serves (retried when the start fails). */
export async function startTarget(name: TargetName, opts: TargetOptions): Promise<Target> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(name, opts);
    } catch (err) {
      if (attempt >= START_ATTEMPTS) throw err;
      process.stderr.write(`${name} failed to start (${(err as Error).message}); retrying\n`);
    }
  }
}

async function startOnce(name: TargetName, opts: TargetOptions): Promise<Target> {
  const nodeArgs = [...(opts.nodeFlags ?? []), ...(opts.profileDir ? ['--cpu-prof', '--cpu-prof-dir', opts.profileDir, '--cpu-prof-name', `${name}-${Date.now()}.cpuprofile`] : [])];
  // Like for like (issue 21): both servers run with the flags pollcast is deployed with (`npm start`, the
  // Dockerfile), and those it sets on itself as it starts (V8_RUNTIME_FLAGS; the naive server runs no
  // WebAssembly, so they change nothing there), so a difference in memory is the code's, not the flags'.
  if (name === 'cluster') return startCluster(opts, [...SERVER_FLAGS, ...nodeArgs]);
  if (name === 'hop') throw new Error('the hop probe is not a server: bench/hop.ts measures it');
  let child: ChildProcess;
  let port: number;
  if (name === 'pollcast') {
    port = await freePort();
    child = startPollcastProcess(opts, [...SERVER_FLAGS, ...nodeArgs], port, {});
    await waitHealthy(`http://127.0.0.1:${port}`, child);
  } else {
    child = startService({ name, core: opts.core, nodeArgs: [...SERVER_FLAGS, ...nodeArgs], script: opts.baselineEntry ?? BASELINE_SOURCE_ENTRY, env: { ...opts.env, UPSTREAM_URL: opts.upstreamUrl, PORT: '0' }, cwd: opts.cwd, forwardStdout: true });
    const { baseline } = await firstJsonLine<{ baseline: string }>(child);
    port = Number(new URL(baseline).port);
  }
  return { name, pids: [child.pid!], redisPid: null, host: '127.0.0.1', ports: [port], stop: () => stopProcess(child, 'SIGTERM', 15_000) };
}

function startPollcastProcess(opts: TargetOptions, nodeArgs: string[], port: number, extraEnv: Record<string, string>): ChildProcess {
  const env = { ...opts.env, ...liftedLimitEnv(), UPSTREAM_URL: opts.upstreamUrl, AUTH: 'none', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...extraEnv };
  return startService({ name: 'pollcast', core: opts.core, nodeArgs, script: opts.pollcastEntry ?? POLLCAST_SOURCE_ENTRY, env, cwd: opts.cwd, forwardStdout: true });
}

async function waitListening(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}) at start`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) return;
    await delay(50);
  }
  throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`);
}

/** A redis-server without persistence on the server core, and CLUSTER_SIZE pollcast processes on it (defaults otherwise). */
async function startCluster(opts: TargetOptions, nodeArgs: string[]): Promise<Target> {
  const redisPort = await freePort();
  const redisArgs = ['redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'];
  const [cmd, ...args] = opts.core !== null && CAN_PIN ? ['taskset', '-c', String(opts.core), ...redisArgs] : redisArgs;
  const redis = spawn(cmd!, args, { stdio: 'ignore' });
  const started = new Promise<void>((resolve, reject) => {
    redis.once('spawn', () => resolve());
    redis.once('error', (err) => reject(new Error(`redis-server could not start (${err.message}): the cluster target needs it (apt-get install redis-server)`)));
  });
  await started;
  await waitListening(redisPort, redis);
  const children: ChildProcess[] = [];
  const stopAll = async () => {
    await Promise.all(children.map((c) => stopProcess(c, 'SIGTERM', 15_000)));
    await stopProcess(redis, 'SIGTERM', 5_000);
  };
  try {
    const ports = await Promise.all(Array.from({ length: CLUSTER_SIZE }, () => freePort()));
    for (const port of ports) children.push(startPollcastProcess(opts, nodeArgs, port, { REDIS_URL: `redis://127.0.0.1:${redisPort}` }));
    await Promise.all(children.map((c, i) => waitHealthy(`http://127.0.0.1:${ports[i]}`, c)));
    return { name: 'cluster', pids: [...children.map((c) => c.pid!), redis.pid!], redisPid: redis.pid!, host: '127.0.0.1', ports, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
