/**
 * The shared steps of `run.ts` and `smaps.ts`: start `server.ts` (one target,
 * the Node flags given) in a child, take a reading, open N idle streams from
 * `client.ts` in another child, wait for the opens' garbage to be collected,
 * take a second reading.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** What `server.ts` answers to `mem`: its memory after a full GC. */
export interface ServerMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  spaces: Record<string, number>;
}

/** Time for the opens' garbage to be collected before the second reading (ms). */
const SETTLE_MS = 1500;
/** Time for the server to settle after it started, before the first reading (ms). */
const START_SETTLE_MS = 500;

const here = (file: string) => new URL(file, import.meta.url).pathname;

/** Runs the experiment; `read` gets the server's answer to `mem` and its pid, right after the full GC. */
export async function beforeAndAfter<T>(target: string, streams: number, nodeFlags: readonly string[], read: (memory: ServerMemory, pid: number) => T): Promise<{ before: T; after: T }> {
  const server = spawn(process.execPath, [...nodeFlags, here('server.ts'), target], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: server.stdout! });
  const nextLine = () => new Promise<string>((resolve) => lines.once('line', resolve));
  const reading = async () => {
    server.stdin!.write('mem\n');
    return read(JSON.parse(await nextLine()) as ServerMemory, server.pid!);
  };
  const { url } = JSON.parse(await nextLine()) as { url: string };
  await new Promise((resolve) => setTimeout(resolve, START_SETTLE_MS));
  const before = await reading();
  const client = spawn(process.execPath, [here('client.ts'), url, String(streams)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => createInterface({ input: client.stdout! }).once('line', () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const after = await reading();
  client.kill();
  server.kill();
  return { before, after };
}
