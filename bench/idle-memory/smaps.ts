/**
 * Where the RSS of idle streams lives, by mapping: the same experiment as
 * `run.ts` (a server child, N idle streams from another child, memory read
 * after a full GC), reading the server's `/proc/PID/smaps` before and after.
 * `[heap]` is malloc's (native objects: node:http's parser, libuv handles);
 * the small anonymous mappings are mostly V8's heap pages.
 *
 *   node bench/idle-memory/smaps.ts pollcast 10000 --max-semi-space-size=16
 *   node bench/idle-memory/smaps.ts naive 10000 --max-semi-space-size=16
 *   node bench/idle-memory/smaps.ts raw 10000 --max-semi-space-size=16
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const [target = 'naive', countText = '10000', ...nodeFlags] = process.argv.slice(2);
const streams = Number(countText);
/** Time for the opens' garbage to be collected before the second reading (ms), as in run.ts. */
const SETTLE_MS = 1500;
const here = (file: string) => new URL(file, import.meta.url).pathname;
const server = spawn(process.execPath, [...nodeFlags, here('server.ts'), target], { stdio: ['pipe', 'pipe', 'inherit'] });
const lines = createInterface({ input: server.stdout! });
const nextLine = () => new Promise<string>((resolve) => lines.once('line', resolve));
const { url } = JSON.parse(await nextLine()) as { url: string };

/** Resident kB by mapping: named ones by name, anonymous ones by size class. */
function residentByMapping(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const size = parseInt(m[2]!, 16) - parseInt(m[1]!, 16);
      name = m[3] || (size >= 64 << 20 ? 'anonymous >= 64 MB' : size >= 1 << 20 ? 'anonymous 1-64 MB' : 'anonymous < 1 MB');
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[name] = (out[name] ?? 0) + Number(rss[1]);
  }
  return out;
}
const read = async () => {
  // The server answers after a full GC; the mappings are read then.
  server.stdin!.write('mem\n');
  await nextLine();
  return residentByMapping(server.pid!);
};

await new Promise((resolve) => setTimeout(resolve, 500));
const before = await read();
const client = spawn(process.execPath, [here('client.ts'), url, String(streams)], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise<void>((resolve) => createInterface({ input: client.stdout! }).once('line', () => resolve()));
await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
const after = await read();
console.log(`${target} ${nodeFlags.join(' ') || '(Node defaults)'}, ${streams} idle streams, resident KB per stream by mapping:`);
for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
  const kb = (after[name] ?? 0) - (before[name] ?? 0);
  if (Math.abs(kb) >= 100) console.log(`  ${name}: ${(kb / streams).toFixed(2)} (${before[name] ?? 0} -> ${after[name] ?? 0} kB)`);
}
client.kill();
server.kill();
