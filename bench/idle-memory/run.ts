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
import { beforeAndAfter } from './experiment.ts';

const [target = 'pollcast', countText = '10000', ...nodeFlags] = process.argv.slice(2);
const streams = Number(countText);
const { before, after } = await beforeAndAfter(target, streams, nodeFlags, (memory) => memory);
const kb = (a: number, b: number) => ((a - b) / streams / 1024).toFixed(2);
console.log(
  `${target} ${nodeFlags.join(' ') || '(Node defaults)'}, ${streams} idle streams, KB per stream: RSS ${kb(after.rss, before.rss)}, ` +
    `live heap ${kb(after.heapUsed, before.heapUsed)}, committed heap ${kb(after.heapTotal, before.heapTotal)}, new space ${kb(after.spaces.new_space ?? 0, before.spaces.new_space ?? 0)}`,
);
