/**
 * A real `redis-server` child on a free loopback port, without persistence
 * (`--save '' --appendonly no`), that a test can stop and start again (empty)
 * on the same port. The binary must exist: a missing Redis fails the test,
 * it never skips it (CI installs it; see .ci/run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { freePort, listenerIsProcess } from './harness.ts';

/** The redis-server binary (REDIS_SERVER_BIN overrides). */
export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server';

/** One redis-server the test controls. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Stops it (SIGKILL: no goodbye to clients, like a crash); resolves once it exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open and nothing answers, as with a hung server or a frozen machine. */
  pause(): void;
  /** Lets a frozen server run again (SIGCONT). */
  resume(): void;
  /** Runs one command through redis-cli-free RESP over a socket (tests inspect keys with it). */
  command(...args: string[]): Promise<unknown>;
}

// A minimal RESP client: enough for tests to read what pollcast wrote.
function parseResp(buf: string, at = 0): [unknown, number] | null {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const type = buf[at];
  const line = buf.slice(at + 1, eol);
  if (type === '+') return [line, eol + 2];
  if (type === '-') return [new Error(line), eol + 2];
  if (type === ':') return [Number(line), eol + 2];
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return [null, eol + 2];
    if (Buffer.byteLength(buf.slice(eol + 2)) < n + 2) return null;
    const bytes = Buffer.from(buf.slice(eol + 2), 'utf8');
    const value = bytes.subarray(0, n).toString('utf8');
    return [value, eol + 2 + value.length + 2];
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return [null, eol + 2];
    const out: unknown[] = [];
    let pos = eol + 2;
    for (let i = 0; i < n; i++) {
      const r = parseResp(buf, pos);
      if (!r) return null;
      out.push(r[0]);
      pos = r[1];
    }
    return [out, pos];
  }
  throw new Error(`unexpected RESP type ${type}`);
}

/** Sends one command to 127.0.0.1:`port` and resolves with the parsed reply. */
export function redisCommand(port: number, ...args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('data', (d: string) => {
      text += d;
      const r = parseResp(text);
      if (!r) return;
      socket.end();
      if (r[0] instanceof Error) reject(r[0]);
      else resolve(r[0]);
    });
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

async function waitReady(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${output()}`);
    // Another test's Redis may have taken the port first and answer the PING: the listener must be this child.
    if ((await redisCommand(port, 'PING').then((r) => r === 'PONG', () => false)) && listenerIsProcess(child.pid!, port) !== false) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${port} within 10 s: ${output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Every redis-server a test of this process started and has not stopped: killed when the process exits, by one
 * listener for them all (one per server went past Node's 10 and printed MaxListenersExceededWarning in CI), kept
 * on the process so that a module evaluated again (another test file in the same worker) adds none.
 */
const RUNNING = Symbol.for('pollcast.test.redisServers');
const holder = process as unknown as { [RUNNING]?: Set<ChildProcess> };
const running = (holder[RUNNING] ??= (() => {
  const set = new Set<ChildProcess>();
  process.once('exit', () => {
    for (const c of set) c.kill('SIGKILL');
  });
  return set;
})());

/** Starts a redis-server on a free port (`extraArgs`: more server options, e.g. `--maxmemory 3mb`). */
export async function startRedis(extraArgs: readonly string[] = []): Promise<RedisServer> {
  let port = await freePort();
  let child: ChildProcess | null = null;
  let out = '';
  const launch = async () => {
    out = '';
    const c = spawn(REDIS_SERVER_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    const spawned = new Promise<void>((resolve, reject) => {
      c.once('spawn', () => resolve());
      c.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new Error(`${REDIS_SERVER_BIN} not found: cluster tests need a real Redis (apt-get install redis-server, or set REDIS_SERVER_BIN)`) : err),
      );
    });
    c.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
    c.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
    await spawned;
    child = c;
    running.add(c);
    c.once('exit', () => running.delete(c));
    await waitReady(port, c, () => out);
  };
  // A port taken between freePort() and the bind: a fresh one (only at the first start; a restart keeps its port).
  for (let attempt = 1; ; attempt++) {
    try {
      await launch();
      break;
    } catch (err) {
      if (attempt === 5 || !/Address already in use/.test(out)) throw err;
      port = await freePort();
    }
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null) return;
      const exited = once(c, 'exit');
      c.kill('SIGKILL');
      await exited;
      child = null;
    },
    start: launch,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    command: (...args) => redisCommand(port, ...args),
  };
}

/**
 * The suite's Redis when CI started one (POLLCAST_TEST_REDIS_URL, see
 * .ci/run), else a redis-server of this test's own. Shared, so keys must be
 * the test's own (a unique prefix) and it is never stopped from a test.
 */
export async function suiteRedis(): Promise<Pick<RedisServer, 'url' | 'port' | 'command' | 'stop'>> {
  const shared = process.env.POLLCAST_TEST_REDIS_URL;
  if (!shared) return startRedis();
  const port = Number(new URL(shared).port);
  return { url: shared, port, command: (...args) => redisCommand(port, ...args), stop: async () => {} };
}
