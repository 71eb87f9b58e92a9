/** Event frames built from the upstream's own JSON text: the same events as re-serialising them, whatever the layout. */
import { describe, expect, it } from 'vitest';
import { eventFrame, frameBytes } from '../../src/hub/frames.ts';
import { Body } from '../../src/upstream/body.ts';
import { attachEventText, eventSpans, TEXT_MIN_AVERAGE_EVENT_BYTES } from '../../src/upstream/event-spans.ts';
import { parseChanges } from '../../src/upstream/parse.ts';
import { RAW_EVENT_JSON, type UpstreamEvent } from '../../src/upstream/types.ts';

/** A top-level field that brings a body's events to the average size past which their text is used. */
const pad = (events: number) => `"pad":"${'p'.repeat(events * TEXT_MIN_AVERAGE_EVENT_BYTES)}"`;

/** A copy of `bytes` in memory of its own, as a socket read is (Buffer.alloc never slices the shared pool). */
function own(bytes: Buffer): Buffer {
  const c = Buffer.alloc(bytes.length);
  bytes.copy(c);
  return c;
}

/**
 * The bytes of `text` as the client holds a body: in chunks cut at `cuts` (byte offsets, a
 * character may lie across two), each in memory of its own as a socket read is.
 */
function chunked(text: string, cuts: number[] = []): Body {
  const bytes = Buffer.from(text, 'utf8');
  const at = [0, ...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length];
  return new Body(at.slice(1).map((end, k) => own(bytes.subarray(at[k]!, end))));
}

/** Parses a changes body as the client does (in chunks cut at `cuts`), then attaches the events' text. */
function received(text: string, cuts: number[] = []): UpstreamEvent[] {
  const body = chunked(text, cuts);
  const decoded = body.text();
  expect(decoded).toBe(text);
  const value = JSON.parse(decoded) as { new_events?: unknown };
  const parsed = parseChanges(value);
  if (!parsed.ok) throw new Error(parsed.reason);
  attachEventText(body, decoded, value.new_events, parsed.value.new_events);
  return parsed.value.new_events;
}

/** The frame's `id` and `data` lines, checked to be the whole frame. */
function frameOf(index: number, event: UpstreamEvent): { id: string; data: unknown } {
  const text = frameBytes(eventFrame(index, event)).toString('utf8');
  const m = /^id: (\d+)\ndata: ([^\r\n]*)\n\n$/.exec(text);
  if (!m) throw new Error(`not one id line and one data line: ${JSON.stringify(text.slice(0, 200))}`);
  return { id: m[1]!, data: JSON.parse(m[2]!) };
}

const hasText = (e: UpstreamEvent) => e[RAW_EVENT_JSON] !== undefined;

// A small seeded generator (mulberry32) so a failure names a reproducible case.
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['a', 'Z', ' ', '"', '\\', '/', '{', '}', '[', ']', ',', ':', 'é', '\u2028', '😀', '\n', '\t', '\u0001', 'new_events', '\\"'];

function randomString(r: () => number): string {
  let s = '';
  const n = Math.floor(r() * 8);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(r() * PIECES.length)];
  return s;
}

function randomValue(r: () => number, depth: number): unknown {
  const pick = r();
  if (depth > 3 || pick < 0.3) return [null, true, false, 0, -1.5e3, 42, randomString(r)][Math.floor(r() * 7)];
  if (pick < 0.6) return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(r() * 4); i > 0; i--) o[randomString(r)] = randomValue(r, depth + 1);
  return o;
}

/** A string literal as another JSON writer might spell it: half of the values and one key in twenty with some characters as `\uXXXX`, `/` as `\/`. */
function spell(s: string, r: () => number, plainChance = 0.5): string {
  if (r() < plainChance) return JSON.stringify(s);
  let out = '"';
  for (const ch of s) {
    const plain = JSON.stringify(ch).slice(1, -1);
    if (plain.length === 1 && r() < 0.2) out += ch === '/' ? '\\/' : [...ch].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
    else out += plain;
  }
  return `${out}"`;
}

/** Serialises with random spaces and tabs between tokens (never a line break unless `breaks`). */
function write(v: unknown, r: () => number, breaks: boolean): string {
  const ws = () => (r() < 0.3 ? [' ', '\t', '  ', breaks ? '\n' : ' ', breaks ? '\r\n' : '\t'][Math.floor(r() * 5)]! : '');
  if (typeof v === 'string') return spell(v, r);
  if (Array.isArray(v)) return `[${ws()}${v.map((x) => `${ws()}${write(x, r, breaks)}${ws()}`).join(',')}${ws()}]`;
  if (v !== null && typeof v === 'object') {
    return `{${ws()}${Object.entries(v).map(([k, x]) => `${ws()}${spell(k, r, 0.95)}${ws()}:${ws()}${write(x, r, breaks)}${ws()}`).join(',')}${ws()}}`;
  }
  return JSON.stringify(v);
}

describe('event frames from the upstream text', () => {
  it('finds the spans of the top-level new_events elements only (the last key, as JSON.parse keeps)', () => {
    const body = '{"a":{"new_events":[1]},"new_events":[{"type":"x"}, 2 ,"s,]"],"new_events" : [ [1,[2]] , {"b":"}"} ]}';
    const spans = eventSpans(body);
    expect(spans?.map(({ start, end }) => body.slice(start, end))).toEqual(['[1,[2]]', '{"b":"}"}']);
    expect(eventSpans('{"status":"x"}')).toBeNull();
    expect(eventSpans('[1]')).toBeNull();
  });

  it('frames an event from its text with "index" first, and the frame parses to what re-serialising gives', () => {
    const [a, b] = received(`{"status":"running",${pad(2)},"new_events":[{"type":"t","data":{"s":"q\\"}]{,"},"timestamp":"1"}, { "type" : "u" , "data" : null , "timestamp" : "2" }]}`);
    expect(hasText(a!) && hasText(b!)).toBe(true);
    expect(frameBytes(eventFrame(7, a!)).toString()).toBe('id: 7\ndata: {"index":7,"type":"t","data":{"s":"q\\"}]{,"},"timestamp":"1"}\n\n');
    expect(frameOf(8, b!).data).toEqual({ index: 8, type: 'u', data: null, timestamp: '2' });
  });

  it('reads an event\'s data from its text when asked, holding no parsed value of it (the cluster log writes the same JSON)', () => {
    const data = { image: 'i'.repeat(3 * TEXT_MIN_AVERAGE_EVENT_BYTES), n: [1, 2.5, null] };
    const [a] = received(`{"status":"running","new_events":[{"type":"shot","data":${JSON.stringify(data)},"timestamp":"1"}]}`);
    expect(hasText(a!)).toBe(true);
    // No value is held: a getter decodes it from the text, a fresh value each time.
    const own = Object.getOwnPropertyDescriptor(a, 'data')!;
    expect(own.value).toBeUndefined();
    expect(typeof own.get).toBe('function');
    expect(a!.data).toEqual(data);
    expect(a!.data).not.toBe(a!.data);
    expect(JSON.stringify(a)).toBe(JSON.stringify({ type: 'shot', data, timestamp: '1' }));
    // An event left to re-serialising keeps its parsed value as it was.
    const [plain] = received(`{"status":"running",${pad(1)},"new_events":[{"type":"t","data":{"k":1},"timestamp":"1","extra":2}]}`);
    expect(hasText(plain!)).toBe(false);
    expect(Object.getOwnPropertyDescriptor(plain, 'data')!.value).toEqual({ k: 1 });
  });

  it('re-serialises an event with other fields, a missing or null timestamp, a line break, or in a body that is not UTF-8', () => {
    const events = received(`{"status":"x",${pad(7)},"new_events":[{"type":"a","data":1,"timestamp":"t","extra":2},{"type":"b","data":1},{"type":"c","data":1,"timestamp":null},{"type":"d",\n"data":1,"timestamp":"t"},{"type":"e","data":1,"timestamp":"t","type":"f"},{"ty\\u0070e":"g","data":1,"timestamp":"t"},{"type":"h","data":1,"timestamp":"t"}]}`);
    expect(events.map(hasText)).toEqual([false, false, false, false, false, false, true]);
    // A repeated key stays out of the frame: it carries what JSON.parse read, once.
    expect(frameBytes(eventFrame(4, events[4]!)).toString()).toBe('id: 4\ndata: {"index":4,"type":"f","data":1,"timestamp":"t"}\n\n');
    expect(frameOf(0, events[0]!).data).toEqual({ index: 0, type: 'a', data: 1, timestamp: 't' });
    expect(frameOf(1, events[1]!).data).toEqual({ index: 1, type: 'b', data: 1, timestamp: '' });
    const latin1 = Buffer.concat([Buffer.from('{"status":"x","new_events":[{"type":"a","data":"'), Buffer.from([0xe9]), Buffer.from('","timestamp":"t"}]}')]);
    const value = JSON.parse(latin1.toString('utf8')) as { new_events: unknown };
    const parsed = parseChanges(value);
    if (!parsed.ok) throw new Error(parsed.reason);
    attachEventText(new Body([latin1]), latin1.toString('utf8'), value.new_events, parsed.value.new_events);
    expect(hasText(parsed.value.new_events[0]!)).toBe(false);
  });

  it('never takes text from a new_events key spelled with an escape (JSON.parse keeps the last key, whatever its spelling)', () => {
    const [e] = received(`{"status":"x",${pad(1)},"new_events":[{"type":"A","data":"wrong","timestamp":"1"}],"new\\u005fevents":[{"type":"B","data":"right","timestamp":"2"}]}`);
    expect(hasText(e!)).toBe(false);
    expect(frameOf(0, e!).data).toEqual({ index: 0, type: 'B', data: 'right', timestamp: '2' });
  });

  it('leaves bodies of small events to re-serialising, and crosses strings full of escaped quotes', () => {
    expect(received('{"status":"x","new_events":[{"type":"a","data":1,"timestamp":"t"}]}').map(hasText)).toEqual([false]);
    const nested = JSON.stringify({ deep: JSON.stringify({ deeper: JSON.stringify({ s: 'a"b\\c'.repeat(2000) }) }) });
    const [e] = received(`{"status":"x","new_events":[{"type":"tool_result","data":${JSON.stringify(nested)},"timestamp":"t"}]}`);
    expect(hasText(e!)).toBe(true);
    expect(frameOf(9, e!).data).toEqual({ index: 9, type: 'tool_result', data: nested, timestamp: 't' });
  });

  it('gives the same events as re-serialising for 3,000 random bodies (escapes, unicode, nesting, spaces, line breaks)', () => {
    let framedFromText = 0;
    let total = 0;
    for (let seed = 1; seed <= 3000; seed++) {
      const r = rng(seed);
      const events = Array.from({ length: Math.floor(r() * 4) + 1 }, () => {
        const e: Record<string, unknown> = { type: randomString(r), data: randomValue(r, 0), timestamp: randomString(r) };
        if (r() < 0.1) e.more = randomValue(r, 2);
        return e;
      });
      const body: Record<string, unknown> = { status: 'running', metrics: { steps: randomValue(r, 2) }, new_events: events };
      if (r() < 0.8) body.pad = 'p'.repeat(events.length * TEXT_MIN_AVERAGE_EVENT_BYTES);
      if (r() < 0.2) body[`x${randomString(r)}`] = randomValue(r, 1);
      const text = write(body, r, r() < 0.2);
      // Half of the bodies arrive in up to four chunks, cut anywhere (inside a character too).
      const size = Buffer.byteLength(text);
      const cuts = r() < 0.5 ? Array.from({ length: Math.floor(r() * 4) + 1 }, () => Math.floor(r() * size)) : [];
      const got = received(text, cuts);
      got.forEach((e, k) => {
        const expected = JSON.parse(JSON.stringify({ index: 100 + k, type: e.type, data: e.data, timestamp: e.timestamp })) as unknown;
        expect(frameOf(100 + k, e), `seed ${seed}, event ${k}`).toEqual({ id: String(100 + k), data: expected });
        total++;
        if (hasText(e)) framedFromText++;
      });
    }
    // The property must have exercised the text path, and the fallback too.
    expect(framedFromText).toBeGreaterThan(total / 4);
    expect(framedFromText).toBeLessThan(total);
  });
});
