/** The pure parts of the Durable Stream route: offsets, chunks, cursors, ETags, cache headers, message bytes. */
import { describe, expect, it } from 'vitest';
import {
  CHUNK_EVENTS,
  CURSOR_EPOCH_MS,
  CURSOR_INTERVAL_MS,
  cacheControl,
  chunkEnd,
  etagMatches,
  etagOf,
  formatOffset,
  jsonArray,
  jsonArrayStream,
  nextCursor,
  parseCursor,
  parseLive,
  parseOffset,
  recordMessage,
  sseControlEvent,
  sseDataEvent,
  type Position,
} from '../../src/http/durable-offsets.ts';
import { endFrame, eventFrame, frameData, SplitFrame, statusFrameOf } from '../../src/hub/frames.ts';
import { RAW_EVENT_JSON } from '../../src/upstream/types.ts';
import { BadRequestError } from '../../src/errors.ts';

const pos = (events: number, status = 0): Position => ({ events, status, closed: false });

describe('offsets', () => {
  it('round-trip, never use the sentinels, and sort as the stream does', () => {
    const inOrder: Position[] = [pos(0), pos(0, 5), pos(0, 1_796_282_426_704), pos(9), pos(10), pos(10, 3), { events: 10, closed: true }, pos(100), pos(2 ** 53 - 1)];
    const offsets = inOrder.map(formatOffset);
    expect([...offsets].sort()).toEqual(offsets);
    for (const [k, o] of offsets.entries()) {
      expect(o).toMatch(/^[0-9a-z_]+$/);
      expect(o).not.toMatch(/[,&=?/]/);
      expect(['-1', 'now']).not.toContain(o);
      expect(parseOffset(o)).toEqual(inOrder[k]);
    }
  });

  it('reads -1 and no offset as the start, now as the tail, and refuses anything else with a 400 naming the offset', () => {
    expect(parseOffset(undefined)).toEqual(pos(0));
    expect(parseOffset('-1')).toEqual(pos(0));
    expect(parseOffset('now')).toBe('now');
    for (const bad of ['', '0', '-2', 'abc', '0000000000000001_', '0000000000000001_00000000000000001', '0000000000000001-0000000000000000', '9999999999999999_0000000000000000', ' 0000000000000001_0000000000000000']) {
      expect(() => parseOffset(bad), bad).toThrow(BadRequestError);
      expect(() => parseOffset(bad)).toThrow(/offset/);
    }
  });

  it('end chunks at the multiples of CHUNK_EVENTS, wherever a reader starts', () => {
    expect(chunkEnd(0)).toBe(CHUNK_EVENTS);
    expect(chunkEnd(CHUNK_EVENTS - 1)).toBe(CHUNK_EVENTS);
    expect(chunkEnd(CHUNK_EVENTS)).toBe(2 * CHUNK_EVENTS);
    expect(chunkEnd(137)).toBe(200);
  });
});

describe('parameters', () => {
  it('live is absent, long-poll or sse; cursor is digits', () => {
    expect(parseLive(undefined)).toBe('catch-up');
    expect(parseLive('long-poll')).toBe('long-poll');
    expect(parseLive('sse')).toBe('sse');
    expect(() => parseLive('true')).toThrow(/live/);
    expect(parseCursor(undefined)).toBeUndefined();
    expect(parseCursor('')).toBeUndefined();
    expect(parseCursor('1234')).toBe(1234);
    for (const bad of ['-1', '1.5', 'x', '1234567890123456']) expect(() => parseCursor(bad), bad).toThrow(/cursor/);
  });

  it('cursors are the 20 s interval, and move past one the client holds (never back)', () => {
    const now = CURSOR_EPOCH_MS + 1000 * CURSOR_INTERVAL_MS + 5;
    expect(nextCursor(undefined, now)).toBe('1000');
    expect(nextCursor(999, now)).toBe('1000');
    expect(Number(nextCursor(1000, now, () => 0))).toBeGreaterThan(1000);
    expect(Number(nextCursor(5000, now, () => 0.999))).toBeGreaterThan(5000);
    expect(Number(nextCursor(5000, now, () => 0.999))).toBeLessThanOrEqual(5000 + 3600 / 20);
  });
});

describe('validators and cache headers', () => {
  it('ETag names the stream and the range; If-None-Match matches it, weak or listed, or *', () => {
    const e = etagOf('s1', '-1', '0000000000000100_0000000000000000');
    expect(e).toBe('"s1:-1:0000000000000100_0000000000000000"');
    expect(etagMatches(e, e)).toBe(true);
    expect(etagMatches(`"x", W/${e}`, e)).toBe(true);
    expect(etagMatches('*', e)).toBe(true);
    expect(etagMatches('"s1:-1:other"', e)).toBe(false);
    expect(etagMatches(undefined, e)).toBe(false);
  });

  it('fixed ranges are kept a year, the tail as the protocol says; public only when the session is', () => {
    expect(cacheControl(true, true)).toBe('public, max-age=31536000, immutable');
    expect(cacheControl(false, true)).toBe('private, max-age=31536000, immutable');
    expect(cacheControl(true, false)).toBe('public, max-age=60, stale-while-revalidate=300');
    expect(cacheControl(false, false)).toBe('private, max-age=60, stale-while-revalidate=300');
  });
});

describe('message bytes', () => {
  it('an event is the SSE frame data as it is; status and end records carry event and no index', () => {
    const ev = { type: 'AgentEvent', data: { kind: 'policy_event', text: 'line\nbreak' }, timestamp: '2026-01-01T00:00:00Z' };
    const frame = eventFrame(7, ev);
    expect(JSON.parse(frameData(frame).toString())).toEqual({ index: 7, ...ev });
    const status = recordMessage('status', frameData(statusFrameOf(JSON.stringify({ status: 'running', error: null }))));
    expect(JSON.parse(status.toString())).toEqual({ event: 'status', status: 'running', error: null });
    expect(JSON.parse(recordMessage('end', Buffer.from('{}')).toString())).toEqual({ event: 'end' });
    const snapshot = { status: 'completed', startedAt: null, finishedAt: 'x', error: null, answer: 42, metrics: null } as never;
    const end = JSON.parse(recordMessage('end', frameData(endFrame(snapshot, 7, null))).toString());
    expect(end.event).toBe('end');
    expect(end).not.toHaveProperty('index');
    expect(JSON.parse(jsonArray([frameData(frame), status]).toString())).toHaveLength(2);
    expect(jsonArray([]).toString()).toBe('[]');
  });

  it('a screenshot framed from the upstream\'s text (a split frame) gives the same record', () => {
    const ev = { type: 'screenshot', data: { image: 'x'.repeat(100_000) }, timestamp: '2026-01-01T00:00:00Z' };
    const text = Buffer.concat([Buffer.from(JSON.stringify(ev))]); // memory of its own size, as the client's body
    const frame = eventFrame(7, { ...ev, [RAW_EVENT_JSON]: [text] });
    expect(frame).toBeInstanceOf(SplitFrame);
    expect(frameData(frame).toString()).toBe(JSON.stringify({ index: 7, ...ev }));
  });

  it('SSE: one data line per batch, then a control event; the closing control has no cursor', () => {
    const data = sseDataEvent([Buffer.from('{"a":1}'), Buffer.from('{"b":"x\\ny"}')]).toString();
    expect(data).toBe('event: data\ndata: [{"a":1},{"b":"x\\ny"}]\n\n');
    expect(sseControlEvent('0000000000000001_0000000000000000', '7', false, false).toString()).toBe('event: control\ndata: {"streamNextOffset":"0000000000000001_0000000000000000","streamCursor":"7"}\n\n');
    const closing = JSON.parse(sseControlEvent('0000000000000001_end', '7', true, true).toString().split('data: ')[1]!);
    expect(closing).toEqual({ streamNextOffset: '0000000000000001_end', streamClosed: true, upToDate: true });
  });
});

describe('jsonArrayStream stall watch', () => {
  // Three large messages: a pull hands out one, and the next pull waits for a read.
  const big = [0, 1, 2].map(() => Buffer.alloc(100_000, 0x31));
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('calls a reader stalled once no pull came and no pending byte went out for stallMs', async () => {
    let stalled = 0;
    let done = 0;
    const stream = jsonArrayStream(big, { stallMs: 100, onStall: () => stalled++, onDone: () => done++, pendingBytes: () => 5000 });
    await sleep(250);
    expect([stalled, done]).toEqual([1, 1]);
    await stream.cancel();
    expect(done).toBe(1);
  });

  it('does not call a slow reader stalled while its pending bytes go down, even with no pull', async () => {
    let stalled = 0;
    let pending = 100_000;
    const stream = jsonArrayStream(big, { stallMs: 100, onStall: () => stalled++, pendingBytes: () => (pending -= 1000) });
    await sleep(450);
    expect(stalled).toBe(0);
    await stream.cancel();
  });

  it('is done once, when read to the end', async () => {
    let done = 0;
    const stream = jsonArrayStream(big, { stallMs: 100_000, onStall: () => {}, onDone: () => done++, pendingBytes: () => 0 });
    const text = await new Response(stream).text();
    expect(text).toBe(`[${big.map((b) => b.toString()).join(',')}]`);
    expect(done).toBe(1);
  });
});
