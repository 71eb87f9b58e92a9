/**
 * Memory per idle stream, in one process, without the benchmark's pinning:
 * the experiment behind `src/runtime-flags.ts`. Starts `server.ts` (pollcast
 * or the naive server, with the Node flags given) in a child, opens N idle
 * streams from another child, and prints RSS, live heap, committed heap and
 * new space per stream, each measured after a full GC.
 *
 *   node bench/idle-memory/run.ts pollcast 10000 [node flags…]
 *   node bench/idle-memory/run.ts naive 10000 --max-semi-space-size=16
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const [target = 'pollcast', countText = '10000', ...nodeFlags] = process.argv.slice(2);
const streams = Number(countText);
/** Time for the opens' garbage to be collected before the second reading (ms). */
const SETTLE_MS = 1500;

const here = (file: string) => new URL(file, import.meta.url).pathname;
const server = spawn(process.execPath, [...nodeFlags, here('server.ts'), target], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: server.stdout! });
const nextLine = () => new Promise<string>((resolve) => lines.once('line', resolve));
const { url } = JSON.parse(await nextLine()) as { url: string };
const read = async () => {
  server.stdin!.write('mem\n');
  return JSON.parse(await nextLine()) as { rss: number; heapUsed: number; heapTotal: number; spaces: Record<string, number> };
};
await new Promise((resolve) => setTimeout(resolve, 500));
const before = await read();
const client = spawn(process.execPath, [here('client.ts'), url, String(streams)], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise<void>((resolve) => createInterface({ input: client.stdout! }).once('line', () => resolve()));
await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
const after = await read();
const kb = (a: number, b: number) => ((a - b) / streams / 1024).toFixed(2);
console.log(
  `${target} ${nodeFlags.join(' ') || '(Node defaults)'}, ${streams} idle streams, KB per stream: RSS ${kb(after.rss, before.rss)}, ` +
    `live heap ${kb(after.heapUsed, before.heapUsed)}, committed heap ${kb(after.heapTotal, before.heapTotal)}, new space ${kb(after.spaces.new_space ?? 0, before.spaces.new_space ?? 0)}`,
);
client.kill();
server.kill();
