/** The feed: order, de-duplication by index, shared bytes, bounds. */
import { describe, expect, it } from 'vitest';
import { Chunk, createFeed, type Feed, type FeedListener } from '../../src/hub/feed.ts';
import { COPY_BELOW_BYTES } from '../../src/hub/parts.ts';
import { waitFor } from '../../src/http/dropin-routes.ts';
import { eventFrame, frameBytes, frameParts, SplitFrame } from '../../src/hub/frames.ts';
import { taggedEndData, taggedStatus } from '../../src/hub/tagged.ts';
import { UNKNOWN_SNAPSHOT, type Snapshot } from '../../src/upstream/snapshot.ts';
import { RAW_EVENT_JSON, type UpstreamEvent } from '../../src/upstream/types.ts';

const state = (status = 'running', finished_at: string | null = null, metrics: Record<string, unknown> = { steps: 0 }): Snapshot => ({ ...UNKNOWN_SNAPSHOT, status, started_at: 's', finished_at, metrics });
/** History kept in front of the buffer, as the hub keeps it. */
const prepend = (feed: Feed, from: number, events: UpstreamEvent[]) => feed.prependFrames(from, events.map((e, k) => eventFrame(from + k, e)));
/** One loop step into the feed; returns the chunk listeners got, or null. */
function apply(feed: Feed, from: number, events: UpstreamEvent[], snapshot: Snapshot, end?: 'over' | 'refused'): Chunk | null {
  let got: Chunk | null = null;
  const probe: FeedListener = { onChunk: (c) => (got = c), onEnd: () => {} };
  feed.listeners.add(probe);
  feed.publish({ fromIndex: from, events, snapshot, synced: true, upstreamError: null, ...(end ? { end } : {}) });
  feed.listeners.delete(probe);
  return got;
}
const ev = (i: number) => ({ type: 't', data: { i }, timestamp: `ts${i}` });
const evs = (from: number, n: number) => Array.from({ length: n }, (_, k) => ev(from + k));

function listener() {
  const chunks: Chunk[] = [];
  const ends: Buffer[] = [];
  const l: FeedListener = { onChunk: (c) => chunks.push(c), onEnd: (f) => ends.push(f) };
  return { l, chunks, ends };
}

describe('Feed', () => {
  it('appends in order and hands every listener the very same bytes', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
    const a = listener();
    const b = listener();
    feed.listeners.add(a.l);
    feed.listeners.add(b.l);
    apply(feed, 0, evs(0, 3), state());
    expect(feed.nextIndex).toBe(3);
    expect(a.chunks[0]!.bytes).toBe(b.chunks[0]!.bytes);
    expect(a.chunks[0]!.firstIndex).toBe(0);
    expect(a.chunks[0]!.frames).toHaveLength(3);
    // The first answer changed the snapshot, so a status frame follows the events in the same chunk.
    expect(a.chunks[0]!.bytes.toString()).toMatch(/id: 2\n[^]*event: status/);
  });

  it('drops events at or below the last index held (a repeated answer)', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
    apply(feed, 0, evs(0, 3), state());
    const a = listener();
    feed.listeners.add(a.l);
    const chunk = apply(feed, 1, evs(1, 4), state());
    expect(feed.nextIndex).toBe(5);
    expect(chunk!.firstIndex).toBe(3);
    expect(chunk!.frames.map((f) => f.toString().split('\n')[0])).toEqual(['id: 3', 'id: 4']);
    expect(apply(feed, 0, evs(0, 5), state())).toBeNull();
    expect(() => apply(feed, 9, evs(9, 1), state())).toThrow(/gap/);
  });

  it('sends a status frame only when what subscribers see changed', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
    expect(apply(feed, 0, [], state())).not.toBeNull();
    expect(apply(feed, 0, [], state())).toBeNull();
    expect(apply(feed, 0, [], state('running', null, { steps: 1 }))).not.toBeNull();
  });

  it('holds each event frame in memory of its own, not in a shared pool block it would keep alive', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 1000, maxBytes: 1e7 });
    const others: Buffer[] = [];
    // Each event arrives between other small allocations (other sessions' frames, let go since), as on a busy
    // instance: a frame cut from Node's pool would keep a 64 KiB block that is mostly someone else's alive.
    const raw = (i: number): UpstreamEvent => Object.assign(ev(i), { [RAW_EVENT_JSON]: [Buffer.from(JSON.stringify(ev(i)))] });
    for (let i = 0; i < 200; i++) {
      apply(feed, i, [i % 2 === 0 ? ev(i) : raw(i)], state());
      others.push(Buffer.from(`another session's frame ${i} `.repeat(40)));
    }
    const frames = feed.heldFrames(0, Infinity)!;
    expect(frames).toHaveLength(200);
    const blocks = new Set(frames.map((f) => (f as Buffer).buffer));
    expect(blocks.size).toBe(200);
    expect([...blocks].reduce((n, b) => n + b.byteLength, 0)).toBe(frames.reduce((n, f) => n + f.length, 0));
    expect(feed.eventsBetween(5, 7)).toEqual([ev(5), ev(6)]);
    // The status and end frames a finished feed keeps in the cache too.
    apply(feed, 200, [], state('completed', 'f'), 'over');
    // And their session-tagged copies, which multi-session streams keep beside them.
    const tagged = [taggedStatus('s1', feed.statusFrame), taggedEndData('s1', feed.endFrame!)];
    for (const frame of [feed.statusFrame, feed.endFrame!, ...tagged]) expect(frame.buffer.byteLength).toBe(frame.byteLength);
    expect(others.every((o) => o.byteLength < o.buffer.byteLength)).toBe(true);
  });

  it('keeps within its bounds by dropping the oldest events', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 10, maxBytes: 1e6 });
    apply(feed, 0, evs(0, 25), state());
    expect(feed.nextIndex).toBe(25);
    expect(feed.baseIndex).toBeGreaterThan(14);
    expect(feed.nextIndex - feed.baseIndex).toBeLessThanOrEqual(10);
    const base = feed.baseIndex;
    const slice = feed.heldFrames(0, 1e6)!;
    expect(slice.length).toBe(25 - base);
    expect(frameBytes(slice[0]!).toString().startsWith(`id: ${base}\n`)).toBe(true);
    // A byte cap cuts the slice at a frame boundary, but never below one frame.
    expect(feed.heldFrames(base, 1)!.length).toBe(1);
    // The drop-in endpoint reads parsed events back from the held frames.
    expect(feed.eventsBetween(base, base + 2)).toEqual(evs(base, 2));
    expect(feed.eventsBetween(0, base)).toEqual([]);
  });

  it('keeps within its share of the running feeds\' budget when that is smaller than its own bound, follows the share as it changes, and keeps its own bound once ended', () => {
    let share = 1e6;
    const big = (i: number) => ({ type: 't', data: { i, pad: 'x'.repeat(1000) }, timestamp: `ts${i}` });
    const feed = createFeed('s1', true, 0, { maxEvents: 1000, maxBytes: 1e6, share: () => share });
    for (let i = 0; i < 100; i++) apply(feed, i, [big(i)], state());
    expect(feed.baseIndex, 'within its own bound (~100 KB < 1 MB) nothing is dropped').toBe(0);
    // More feeds run: the share falls to ~20 frames' worth; the next append trims to it.
    share = 20_000;
    apply(feed, 100, [big(100)], state());
    expect(feed.bytes).toBeLessThanOrEqual(20_000);
    expect(feed.nextIndex - feed.baseIndex).toBeGreaterThan(10);
    expect(feed.eventsBetween(100, 101)).toEqual([big(100)]);
    // History that would take it past the share is not kept in front of the buffer.
    expect(prepend(feed, feed.baseIndex - 2, [big(feed.baseIndex - 2), big(feed.baseIndex - 1)])).toBe(false);
    // Fewer feeds again: the share grows and the history fits.
    share = 1e6;
    const base = feed.baseIndex;
    expect(prepend(feed, base - 2, [big(base - 2), big(base - 1)])).toBe(true);
    expect(feed.baseIndex).toBe(base - 2);
    // The hub trims at once when another feed joins (the share shrank), without waiting for this one's next append.
    share = 10_000;
    feed.trim();
    expect(feed.bytes).toBeLessThanOrEqual(10_000);
    // Once ended, a feed is bounded by its own maxBytes again: history read back for a late reader is kept.
    apply(feed, 101, [], state('completed', 'f'), 'over');
    const endedBase = feed.baseIndex;
    expect(prepend(feed, endedBase - 20, Array.from({ length: 20 }, (_, k) => big(endedBase - 20 + k)))).toBe(true);
    expect(feed.bytes).toBeGreaterThan(20_000);
  });

  it('ends once: listeners get end and are detached; later applies are ignored', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
    const a = listener();
    feed.listeners.add(a.l);
    apply(feed, 0, evs(0, 2), state());
    apply(feed, 2, [], state('completed', 'f'), 'over');
    apply(feed, 2, [], state('completed', 'f'), 'over');
    expect(a.ends).toHaveLength(1);
    expect(JSON.parse(a.ends[0]!.toString().split('data: ')[1]!).last_index).toBe(1);
    expect(feed.listeners.size).toBe(0);
    expect(apply(feed, 2, evs(2, 1), state())).toBeNull();
    expect(feed.endedBy).toBe('over');
  });

  it('keeps contiguous history fetched for a late subscriber, within its bounds', () => {
    const feed = createFeed('s1', true, 10, { maxEvents: 15, maxBytes: 1e6 });
    apply(feed, 10, evs(10, 5), state());
    expect(prepend(feed, 2, evs(2, 5))).toBe(false); // not contiguous with the buffer
    expect(prepend(feed, 5, evs(5, 5))).toBe(true);
    expect(feed.baseIndex).toBe(5);
    expect(feed.eventsBetween(5, 15)).toEqual(evs(5, 10));
    expect(prepend(feed, 0, evs(0, 5))).toBe(true);
    expect(prepend(feed, 0, [])).toBe(false);
    const full = createFeed('s2', true, 10, { maxEvents: 6, maxBytes: 1e6 });
    apply(full, 10, evs(10, 5), state());
    expect(prepend(full, 5, evs(5, 5))).toBe(false); // would pass maxEvents: newer events are never evicted for older ones
  });

  it('moves the start of an empty buffer only', () => {
    const feed = createFeed('s1', true, 9, { maxEvents: 15, maxBytes: 1e6 });
    feed.rebase(0);
    expect(feed.baseIndex).toBe(0);
    apply(feed, 0, evs(0, 2), state());
    feed.rebase(7);
    expect(feed.baseIndex).toBe(0);
  });

  it('frames a small chunk for HTTP/1.1 in one copy and a big one as its shared parts, never copied', () => {
    const small = new Chunk(3, [eventFrame(3, { type: 'a', data: {}, timestamp: 't' })], Buffer.from('event: status\ndata: {}\n\n'));
    const framed = small.http1();
    expect(Buffer.isBuffer(framed)).toBe(true);
    const body = Buffer.concat([...frameParts(small.frames), small.status!]);
    expect((framed as Buffer).toString()).toBe(`${body.length.toString(16)}\r\n${body.toString()}\r\n`);
    expect(small.http1()).toBe(framed); // built once for every subscriber

    // A page of many ordinary events, bigger than the threshold in all, is still copied once: one write per subscriber.
    const page = Array.from({ length: 100 }, (_, k) => eventFrame(k, { type: 'a', data: { text: 'y'.repeat(400) }, timestamp: 't' }));
    expect(page.reduce((n, f) => n + f.length, 0)).toBeGreaterThan(COPY_BELOW_BYTES);
    const pageChunk = new Chunk(0, page, null);
    const pageFramed = pageChunk.http1();
    expect(Buffer.isBuffer(pageFramed)).toBe(true);
    const pageBody = Buffer.concat(frameParts(page));
    expect((pageFramed as Buffer).equals(Buffer.concat([Buffer.from(`${pageBody.length.toString(16)}\r\n`), pageBody, Buffer.from('\r\n')]))).toBe(true);

    const shot = frameBytes(eventFrame(4, { type: 'screenshot', data: { image: 'x'.repeat(COPY_BELOW_BYTES) }, timestamp: 't' }));
    const status = Buffer.from('event: status\ndata: {}\n\n');
    const big = new Chunk(4, [shot], status);
    const parts = big.http1() as readonly Buffer[];
    expect(Array.isArray(parts)).toBe(true);
    // The frame itself is one of the parts: the same buffer, not a copy of it; the small parts around it are joined.
    expect(parts).toHaveLength(3);
    expect(parts[1]).toBe(shot);
    const size = shot.length + status.length;
    expect(Buffer.concat(parts).toString()).toBe(`${size.toString(16)}\r\n${shot.toString()}${status.toString()}\r\n`);
    expect(big.http1()).toBe(parts);
  });

  it('frames a screenshot from the upstream\'s text without copying it, and reads it back from every path', () => {
    const event: UpstreamEvent = { type: 'screenshot', data: { image: 'x'.repeat(100_000) }, timestamp: 't' };
    // The upstream's body, as attachEventText leaves it: the event's text is a view on it (spaces after `{` too).
    // In memory of its own size, as the client's body of a screenshot is (Buffer.from of a string reserves more,
    // and a buffer under half of Buffer.poolSize is a slice of a shared pool).
    const body = Buffer.concat([Buffer.from(`{"new_events":[{ "type":"screenshot","data":${JSON.stringify(event.data)},"timestamp":"t"}]}`)]);
    const start = body.indexOf('{', 1);
    const withText: UpstreamEvent = { ...event, [RAW_EVENT_JSON]: [body.subarray(start, body.length - 2)] };
    const frame = eventFrame(9, withText);
    expect(frame).toBeInstanceOf(SplitFrame);
    const split = frame as SplitFrame;
    expect(split.text).toHaveLength(1);
    expect(split.text[0]!.buffer).toBe(body.buffer); // a view on the body: not copied
    const framed = (index: number) => `id: ${index}\ndata: ${JSON.stringify({ index, ...event })}\n\n`;
    const expected = framed(9);
    expect(frameBytes(frame).toString()).toBe(expected);
    expect(frame.length).toBe(Buffer.byteLength(expected));

    // A live chunk of it for HTTP/1.1: the size line joined to the head, the text as it is, the rest joined.
    const status = Buffer.from('event: status\ndata: {}\n\n');
    const chunk = new Chunk(9, [frame], status);
    const parts = chunk.http1() as readonly Buffer[];
    expect(parts).toHaveLength(3);
    expect(parts[1]).toBe(split.text[0]);
    expect(Buffer.concat(parts).toString()).toBe(`${(frame.length + status.length).toString(16)}\r\n${expected}${status.toString()}\r\n`);
    expect(chunk.bytes.toString()).toBe(expected + status.toString());

    // Held by a feed: replayed as it is, and decoded again for the drop-in endpoint.
    const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
    feed.publish({ fromIndex: 0, events: [{ type: 'a', data: 1, timestamp: 't' }, withText], snapshot: state(), upstreamError: null, synced: true });
    const held = feed.heldFrames(0, 1e6)!;
    expect(held[1]).toBeInstanceOf(SplitFrame);
    expect(Buffer.concat(frameParts(held)).toString()).toBe(`id: 0\ndata: {"index":0,"type":"a","data":1,"timestamp":"t"}\n\n${framed(1)}`);
    expect(feed.eventsBetween(0, 2)).toEqual([{ type: 'a', data: 1, timestamp: 't' }, event]);

    // A view would keep a page of several screenshots alive for one of them: such a text is copied.
    const two = Buffer.concat([body, body]);
    const copied = eventFrame(9, { ...event, [RAW_EVENT_JSON]: [two.subarray(start, body.length - 2)] });
    expect(Buffer.isBuffer(copied)).toBe(true);
    expect((copied as Buffer).toString()).toBe(expected);
  });
});

describe('waitFor (the drop-ins\' and Durable reads\' wait on a feed)', () => {
  it('resolves at once, false, on a signal aborted before the wait began (shutdown under way), and leaves no watcher', async () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
    const aborted = AbortSignal.abort();
    const started = performance.now();
    expect(await waitFor(feed, () => false, 10_000, aborted)).toBe(false);
    expect(performance.now() - started).toBeLessThan(100);
    expect(feed.watchers.size).toBe(0);
  });
});
