/**
 * CPU per event of what pollcast does with a changes answer before fan-out:
 * decode, parse, shape-check, frame. Framed two ways: by re-serialising the
 * parsed event (JSON.stringify, UTF-8 encode) and from the upstream's own
 * text (src/upstream/event-spans.ts). One event per body, as the `payload`
 * scenario's pages carry: a ~100 KB screenshot by default, or (`--data json`)
 * ~85 KB of JSON text inside a string, full of escaped quotes (a tool result).
 *
 *   node bench/frame-cost.ts [--data image|json] [--image-bytes 75000] [--events 2000]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { eventFrame } from '../src/hub/frames.ts';
import { Body } from '../src/upstream/body.ts';
import { attachEventText } from '../src/upstream/event-spans.ts';
import { parseChanges } from '../src/upstream/parse.ts';

const { values } = parseArgs({ options: { data: { type: 'string', default: 'image' }, 'image-bytes': { type: 'string', default: '75000' }, events: { type: 'string', default: '2000' } } });
const image = randomBytes(Number(values['image-bytes'])).toString('base64');
const toolResult = JSON.stringify(Array.from({ length: 1500 }, (_, i) => ({ id: i, name: `item "${i}"`, path: `C:\\dir\\${i}` })));
const data = values.data === 'json' ? { kind: 'tool_result', result: toolResult, emitted_at_ms: 1 } : { kind: 'observation_event', image, emitted_at_ms: 1 };
const n = Number(values.events);
const body = Buffer.from(
  JSON.stringify({
    status: 'running', started_at: '2026-12-03T00:00:00Z', finished_at: null, error: null, metrics: { steps: 3 },
    new_events: [{ type: 'AgentEvent', data, timestamp: '2026-12-03T00:00:01Z' }],
  }),
);
/** The body as the client holds it: in two socket reads of their own memory, as a ~100 KB answer comes. */
const read = new Body([Buffer.from(body.subarray(0, 65_536)), Buffer.from(body.subarray(65_536))]);

/** Microseconds per event, framed from the text or not. */
function perEvent(fromText: boolean): number {
  let bytes = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const text = read.text();
    const value = JSON.parse(text) as { new_events?: unknown };
    const parsed = parseChanges(value);
    if (!parsed.ok) throw new Error(parsed.reason);
    if (fromText) attachEventText(read, text, value.new_events, parsed.value.new_events);
    bytes += eventFrame(i, parsed.value.new_events[0]!).length;
  }
  if (bytes < n * body.length * 0.9) throw new Error('frames shorter than the events');
  return Number(process.hrtime.bigint() - start) / n / 1000;
}

process.stdout.write(`body ${body.length} bytes, ${n} events per round\n| round | re-serialised us/event | from text us/event |\n|---:|---:|---:|\n`);
for (let round = 1; round <= 5; round++) process.stdout.write(`| ${round} | ${perEvent(false).toFixed(1)} | ${perEvent(true).toFixed(1)} |\n`);
