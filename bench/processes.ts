/**
 * Child processes of the benchmark: started pinned to a core with the
 * descriptor limit raised, observed through /proc (CPU, RSS, descriptors),
 * and stopped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

/** Descriptor limit asked for in every child (the hard limit caps it). */
export const WANTED_NOFILE = 65_535;

/** Kernel clock ticks per second, the unit of utime/stime in /proc/<pid>/stat. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

// Every child still running is killed when the orchestrator exits, however it exits.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Whether `taskset` can pin processes on this machine. */
export const CAN_PIN = spawnSync('taskset', ['-c', '0', 'true']).status === 0;

/** The hard limit on open files of children started from here. */
export function nofileHardLimit(): number {
  const out = spawnSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out);
}

/** Pins this process (every thread) to `core`; returns whether it worked. */
export function pinSelf(core: number): boolean {
  return CAN_PIN && spawnSync('taskset', ['-a', '-cp', String(core), String(process.pid)]).status === 0;
}

export interface ServiceOptions {
  /** Label for forwarded stderr lines. */
  name: string;
  /** Core to pin to, or null to leave unpinned. */
  core: number | null;
  /** Node arguments placed before the script (e.g. --cpu-prof). */
  nodeArgs?: string[];
  script: string;
  args?: string[];
  env?: Record<string, string>;
  cwd: string;
  /** Forward stdout lines too (pollcast logs there); otherwise stdout is left to the caller. */
  forwardStdout?: boolean;
}

/**
 * Starts `node script` through bash, so the descriptor limit is raised before
 * exec; `exec` keeps the pid, so the child's pid is node's.
 */
export function startService(opts: ServiceOptions): ChildProcess {
  const raise = `ulimit -n ${WANTED_NOFILE} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`;
  const nodeCmd = [process.execPath, ...(opts.nodeArgs ?? []), opts.script, ...(opts.args ?? [])];
  const argv = ['bash', '-c', raise, ...nodeCmd];
  const [cmd, ...args] = opts.core !== null && CAN_PIN ? ['taskset', '-c', String(opts.core), ...argv] : argv;
  const child = spawn(cmd!, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`[${opts.name}] ${line}\n`));
  if (opts.forwardStdout) createInterface({ input: child.stdout! }).on('line', (line) => process.stderr.write(`[${opts.name}] ${line}\n`));
  return child;
}

/** The first stdout line of `child`, parsed as JSON. */
export function firstJsonLine<T>(child: ChildProcess, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error('no startup line in time')), timeoutMs);
    // Skip anything else the child prints first (node flags such as --trace-gc write to stdout).
    const onLine = (line: string): void => {
      if (!line.startsWith('{')) return;
      clearTimeout(timer);
      lines.off('line', onLine);
      lines.close();
      resolve(JSON.parse(line) as T);
    };
    lines.on('line', onLine);
    child.once('exit', (code) => reject(new Error(`exited with ${code} before its startup line`)));
  });
}

/** A TCP port free right now (the child binds it soon after). */
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

/** CPU time the process used so far, all threads (µs), from utime and stime of /proc/<pid>/stat. */
export function processCpu(pid: number): { userUs: number; sysUs: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { userUs: (Number(fields[11]) * 1e6) / CLK_TCK, sysUs: (Number(fields[12]) * 1e6) / CLK_TCK };
}

/** Resident set size (KB) from VmRSS. */
export function processRssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/** Peak resident set size of the process's life so far (KB), from VmHWM. */
export function processRssPeakKb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/** Kernel slab memory of the whole machine (KB), from /proc/meminfo: sockets' kernel structures live there, outside any RSS. */
export function slabKb(): number {
  const m = /^Slab:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/** Open file descriptors of the process. */
export function processFdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Busy and total CPU ticks of each core so far, from /proc/stat. */
export function coreTicks(): Array<{ busy: number; total: number }> {
  const out: Array<{ busy: number; total: number }> = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    // user nice system idle iowait irq softirq steal …
    const v = m[2]!.trim().split(/\s+/).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out[Number(m[1])] = { busy: total - v[3]! - v[4]!, total };
  }
  return out;
}

/** Share of all cores busy over the next `ms` (0..1). */
export async function systemBusyShare(ms: number): Promise<number> {
  const a = coreTicks();
  await delay(ms);
  const b = coreTicks();
  let busy = 0;
  let total = 0;
  b.forEach((t, i) => {
    busy += t.busy - (a[i]?.busy ?? 0);
    total += t.total - (a[i]?.total ?? 0);
  });
  return total > 0 ? busy / total : 0;
}

/** Waits (up to `maxWaitMs`) until the machine is nearly idle for two seconds in a row; returns the last busy share. */
export async function waitForQuiet(maxBusyShare: number, maxWaitMs: number): Promise<number> {
  const deadline = performance.now() + maxWaitMs;
  let calm = 0;
  let busy = 1;
  while (performance.now() < deadline) {
    busy = await systemBusyShare(1_000);
    calm = busy <= maxBusyShare ? calm + 1 : 0;
    if (calm >= 2) break;
  }
  return busy;
}

/** Kernel clock ticks as microseconds. */
export function ticksToUs(ticks: number): number {
  return (ticks * 1e6) / CLK_TCK;
}

/** The 1-minute load average, from /proc/loadavg. */
export function loadAverage1(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/** The three load averages as /proc/loadavg prints them. */
export function loadAverages(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Sends `signal`, then SIGKILL after `graceMs`; resolves once the process is gone. */
export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
