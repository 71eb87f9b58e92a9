/**
 * What the streams added to the heap: two heap snapshots of one server (from
 * `bench/run.ts --memory --heap-snapshots`: before and after the streams
 * opened), objects grouped by constructor (or type for strings, closures,
 * code…), with the count and self size added per stream.
 *
 *   node --max-old-space-size=8192 bench/heap-summary.ts <before.heapsnapshot> <after.heapsnapshot> <streams> [top=25]
 *   node --max-old-space-size=8192 bench/heap-summary.ts <snapshot>      (one snapshot's largest groups)
 */
import { readFileSync } from 'node:fs';

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Count and self size (bytes) per group. */
export type HeapGroups = Map<string, { count: number; bytes: number }>;

/** Groups a snapshot's nodes: objects by constructor name, everything else by node type. */
export function groupNodes(snapshot: HeapSnapshot): HeapGroups {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const stride = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const groups: HeapGroups = new Map();
  const { nodes, strings } = snapshot;
  for (let i = 0; i < nodes.length; i += stride) {
    const type = types[nodes[i + typeAt]!] ?? 'unknown';
    // Strings, code and closures are numerous and named by content: group them by kind, not by name.
    const key = type === 'object' || type === 'native' ? `${strings[nodes[i + nameAt]!]} (${type})` : `(${type})`;
    const g = groups.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += nodes[i + sizeAt]!;
    groups.set(key, g);
  }
  return groups;
}

/** The largest groups of one snapshot, MB and count. */
function printGroups(groups: HeapGroups, top = 25): void {
  const rows = [...groups.entries()].sort((x, y) => y[1].bytes - x[1].bytes);
  const total = rows.reduce((n, [, g]) => n + g.bytes, 0);
  process.stdout.write(`heap self size: ${(total / 1048576).toFixed(1)} MB\n       MB     objects  group\n`);
  for (const [key, g] of rows.slice(0, top)) process.stdout.write(`${(g.bytes / 1048576).toFixed(2).padStart(9)}  ${String(g.count).padStart(10)}  ${key}\n`);
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  if (args.length === 1) {
    // One snapshot (e.g. bench/peak-probe.ts's): its groups as they are.
    printGroups(groupNodes(JSON.parse(readFileSync(args[0]!, 'utf8')) as HeapSnapshot));
    process.exit(0);
  }
  const [beforePath, afterPath, streamsArg, topArg] = args;
  const streams = Number(streamsArg);
  if (!beforePath || !afterPath || !(streams > 0)) {
    process.stderr.write('usage: node bench/heap-summary.ts <before.heapsnapshot> <after.heapsnapshot> <streams> [top]\n       node bench/heap-summary.ts <snapshot>\n');
    process.exit(2);
  }
  const before = groupNodes(JSON.parse(readFileSync(beforePath, 'utf8')) as HeapSnapshot);
  const after = groupNodes(JSON.parse(readFileSync(afterPath, 'utf8')) as HeapSnapshot);
  const rows = [...after.entries()].map(([key, a]) => {
    const b = before.get(key) ?? { count: 0, bytes: 0 };
    return { key, count: (a.count - b.count) / streams, bytes: (a.bytes - b.bytes) / streams };
  });
  rows.sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((n, r) => n + r.bytes, 0);
  process.stdout.write(`heap self size added per stream: ${(total / 1024).toFixed(2)} KB over ${streams} streams\n`);
  process.stdout.write('bytes/stream  objects/stream  group\n');
  for (const r of rows.slice(0, Number(topArg ?? 25))) {
    process.stdout.write(`${r.bytes.toFixed(0).padStart(12)}  ${r.count.toFixed(2).padStart(14)}  ${r.key}\n`);
  }
}
