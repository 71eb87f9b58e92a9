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
import { readFileSync } from 'node:fs';
import { beforeAndAfter } from './experiment.ts';

const [target = 'naive', countText = '10000', ...nodeFlags] = process.argv.slice(2);
const streams = Number(countText);

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
const { before, after } = await beforeAndAfter(target, streams, nodeFlags, (_memory, pid) => residentByMapping(pid));
console.log(`${target} ${nodeFlags.join(' ') || '(Node defaults)'}, ${streams} idle streams, resident KB per stream by mapping:`);
for (const name of new Set([...Object.keys(before), ...Object.keys(after)])) {
  const kb = (after[name] ?? 0) - (before[name] ?? 0);
  if (Math.abs(kb) >= 100) console.log(`  ${name}: ${(kb / streams).toFixed(2)} (${before[name] ?? 0} -> ${after[name] ?? 0} kB)`);
}
