/**
 * What one node:http request parser costs in native memory: allocates N
 * parsers the way node:http's server does for each connection and reads
 * malloc's resident `[heap]` before and after. node:http keeps one per
 * connection for the connection's life; pollcast gives it back once a
 * stream's head is out (src/hub/parser-release.ts).
 *
 *   node bench/idle-memory/parser-cost.ts [count=10000]
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
}
const { HTTPParser } = createRequire(import.meta.url)('_http_common') as { HTTPParser: { new (): Parser; REQUEST: number } };
const count = Number(process.argv[2] ?? 10_000);

/** malloc's resident heap (kB). */
function mallocHeapKb(): number {
  let inHeap = false;
  let kb = 0;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) inHeap = m[1] === '[heap]';
    else if (inHeap) kb += Number(/^Rss:\s+(\d+) kB/.exec(line)?.[1] ?? 0);
  }
  return kb;
}

const before = mallocHeapKb();
const kept: Parser[] = [];
for (let i = 0; i < count; i++) {
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
  kept.push(parser);
}
console.log(`${count} node:http parsers: ${((mallocHeapKb() - before) / count).toFixed(2)} KB of malloc heap each`);
