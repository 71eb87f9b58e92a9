/** The feed: order, de-duplication by index, shared bytes, bounds. */
import { describe, expect, it } from 'vitest';
import { createFeed, type Chunk, type FeedListener } from '../../src/hub/feed.ts';

const state = (status = 'running', finished_at: string | null = null) => ({ status, started_at: 's', finished_at, error: null, answer: null, metrics: { steps: 0 } });
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
    feed.apply(0, evs(0, 3), state());
    expect(feed.nextIndex).toBe(3);
    expect(a.chunks[0]!.bytes).toBe(b.chunks[0]!.bytes);
    expect(a.chunks[0]!.firstIndex).toBe(0);
    expect(a.chunks[0]!.frames).toHaveLength(3);
    // The first answer changed the snapshot, so a status frame follows the events in the same chunk.
    expect(a.chunks[0]!.bytes.toString()).toMatch(/id: 2\n[^]*event: status/);
  });

  it('drops events at or below the last index held (a repeated answer)', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
    feed.apply(0, evs(0, 3), state());
    const a = listener();
    feed.listeners.add(a.l);
    const chunk = feed.apply(1, evs(1, 4), state());
    expect(feed.nextIndex).toBe(5);
    expect(chunk!.firstIndex).toBe(3);
    expect(chunk!.frames.map((f) => f.toString().split('\n')[0])).toEqual(['id: 3', 'id: 4']);
    expect(feed.apply(0, evs(0, 5), state())).toBeNull();
    expect(() => feed.apply(9, evs(9, 1), state())).toThrow(/gap/);
  });

  it('sends a status frame only when what subscribers see changed', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
    expect(feed.applyState(state())).not.toBeNull();
    expect(feed.applyState(state())).toBeNull();
    expect(feed.applyState({ ...state(), metrics: { steps: 1 } })).not.toBeNull();
  });

  it('keeps within its bounds by dropping the oldest events', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 10, maxBytes: 1e6 });
    feed.apply(0, evs(0, 25), state());
    expect(feed.nextIndex).toBe(25);
    expect(feed.baseIndex).toBeGreaterThan(14);
    expect(feed.nextIndex - feed.baseIndex).toBeLessThanOrEqual(10);
    const base = feed.baseIndex;
    const slice = feed.framesSlice(0, 1e6)!;
    expect(slice.count).toBe(25 - base);
    expect(slice.bytes.toString().startsWith(`id: ${base}\n`)).toBe(true);
    // A byte cap cuts the slice at a frame boundary, but never below one frame.
    expect(feed.framesSlice(base, 1)!.count).toBe(1);
    // The drop-in endpoint reads parsed events back from the held frames.
    expect(feed.eventsBetween(base, base + 2)).toEqual(evs(base, 2));
    expect(feed.eventsBetween(0, base)).toEqual([]);
  });

  it('ends once: listeners get end and are detached; later applies are ignored', () => {
    const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
    const a = listener();
    feed.listeners.add(a.l);
    feed.apply(0, evs(0, 2), state());
    feed.end(state('completed', 'f'));
    feed.end(state('completed', 'f'));
    expect(a.ends).toHaveLength(1);
    expect(JSON.parse(a.ends[0]!.toString().split('data: ')[1]!).last_index).toBe(1);
    expect(feed.listeners.size).toBe(0);
    expect(feed.apply(2, evs(2, 1), state())).toBeNull();
  });
});
