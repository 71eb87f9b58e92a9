/** `node src/cli.ts` as a process of its own: what a deployment runs. */
import { spawn, type ChildProcess } from 'node:child_process';

/** The entry point a deployment runs. */
export const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

/** A started pollcast process. */
export interface Cli {
  url: string;
  proc: ChildProcess;
  logs: string[];
  closed: Promise<unknown>;
}

/**
 * Starts `node src/cli.ts` and resolves with its URL once it logs that it listens; one that does not within 15 s is
 * killed. The caller stops it; `onSpawn` gets the process at once.
 */
export async function startCli(env: Record<string, string>, onSpawn?: (proc: ChildProcess) => void): Promise<Cli> {
  const proc = spawn(process.execPath, [CLI], { env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  onSpawn?.(proc);
  // Made now: 'close' (exit, and every pipe drained) may follow 'exit' in the same tick.
  const closed = new Promise((resolve) => proc.once('close', resolve));
  const logs: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line; logs: ${logs.join('')}`)), 15_000);
    proc.stdout!.on('data', (d: Buffer) => {
      logs.push(d.toString());
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(logs.join(''));
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
    proc.once('exit', (code) => reject(new Error(`exited ${code}: ${logs.join('')}`)));
  }).catch((err: unknown) => {
    // One that never said it listens is stopped here: a caller that only kills what it got would leave it running.
    if (proc.exitCode === null) proc.kill('SIGKILL');
    throw err;
  });
  return { url, proc, logs, closed };
}
