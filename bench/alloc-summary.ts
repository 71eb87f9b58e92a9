/**
 * Summarises a sampling heap profile (bench/alloc-sampler.ts): the total
 * sampled, then the functions that allocated most themselves and, counting
 * what they called, in all.
 *
 *   node bench/alloc-summary.ts <alloc-PID.json> [top=25]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

const [file, topArg] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: node bench/alloc-summary.ts <alloc-PID.json> [top]');
const top = Number(topArg ?? 25);
const { head } = JSON.parse(readFileSync(file, 'utf8')) as { head: ProfileNode };
const self = new Map<string, number>();
const inclusive = new Map<string, number>();
const nameOf = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/.*\/(src|node_modules)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;

// Returns the subtree's size; a function that recurs counts once per path.
function walk(n: ProfileNode, onPath: Set<string>): number {
  const name = nameOf(n);
  let total = n.selfSize;
  const fresh = !onPath.has(name);
  if (fresh) onPath.add(name);
  for (const c of n.children) total += walk(c, onPath);
  if (fresh) onPath.delete(name);
  self.set(name, (self.get(name) ?? 0) + n.selfSize);
  if (fresh) inclusive.set(name, (inclusive.get(name) ?? 0) + total);
  return total;
}
const total = walk(head, new Set());
const kb = (b: number) => (b / 1024).toFixed(0).padStart(9);
process.stdout.write(`sampled ${kb(total)} KB\n-- self\n`);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${kb(v)} ${k}\n`);
process.stdout.write('-- inclusive\n');
for (const [k, v] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${kb(v)} ${k}\n`);
