/** History pages shared by readers that resume behind the buffer: joined, kept while shared, read a few at once. */
import { describe, expect, it, vi } from 'vitest';
import { HistoryPages, type PageResult } from '../../src/hub/history-pages.ts';
import { historyFailureSettled } from '../../src/hub/hub.ts';
import type { UpstreamEvent } from '../../src/upstream/types.ts';

/** A reader that stays. */
const live = new AbortController().signal;

const event = (i: number): UpstreamEvent => ({ type: 'x', data: { i }, timestamp: '2026-12-06T00:00:00Z' }) as UpstreamEvent;

/** A reader of a history of `total` events whose pages come back at most `short` long, counting its calls. */
function upstream(total: number, short = Infinity, delayMs = 20) {
  const calls: Array<[number, number]> = [];
  let running = 0;
  let maxRunning = 0;
  const read = async (start: number, end: number): Promise<PageResult> => {
    calls.push([start, end]);
    running++;
    maxRunning = Math.max(maxRunning, running);
    await new Promise((r) => setTimeout(r, delayMs));
    running--;
    const n = Math.max(0, Math.min(end, total, start + short) - start);
    return Array.from({ length: n }, (_, k) => event(start + k));
  };
  return { read, calls, maxRunning: () => maxRunning };
}

/** Readers whose pages answer only when released, in the order they started (`started`: `name@start`). */
function heldReaders() {
  const started: string[] = [];
  const held: Array<() => void> = [];
  const reader = (name: string) => async (start: number, end: number): Promise<PageResult> => {
    started.push(`${name}@${start}`);
    await new Promise<void>((r) => held.push(r));
    return Array.from({ length: end - start }, (_, k) => event(start + k));
  };
  /** Releases every page, those started meanwhile too. */
  const releaseAll = async () => {
    while (held.length > 0) {
      held.shift()!();
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return { started, held, reader, releaseAll };
}

/** Page reads answered by hand (`release[i]` answers the i-th call), each call's start recorded in `sent`. */
function byHand() {
  const release: Array<(r: PageResult) => void> = [];
  const sent: number[] = [];
  const read = (start: number) => new Promise<PageResult>((resolve) => (sent.push(start), release.push(resolve)));
  return { read, release, sent };
}

/** What a read answers without a call, or 'its call went out' when it made one (which `byHand` never answers by itself). */
function heldOrCalled(read: Promise<{ result: PageResult }>): Promise<unknown> {
  return Promise.race([read.then((r) => r.result), new Promise((r) => setTimeout(() => r('its call went out'), 500))]);
}

describe('HistoryPages', () => {
  it("holds a failed read for the feed a moment (a 429's Retry-After when longer, within 300 s): its readers get it meanwhile with no call, and events end the run", async () => {
    const pages = new HistoryPages(50);
    const outcomes: PageResult[] = [{ kind: 'rate-limited', retryAfterMs: 1200 }, { kind: 'not-found' }, { kind: 'not-found' }, [event(0)]];
    let calls = 0;
    const read = async (): Promise<PageResult> => outcomes[Math.min(calls++, outcomes.length - 1)]!;
    const first = await pages.read('f', 0, 50, read, live, 's');
    expect(first.result).toEqual({ kind: 'rate-limited', retryAfterMs: 1200 });
    expect(first.failing!.retryAtMs - first.failing!.sinceMs).toBeGreaterThanOrEqual(1200);
    // Within the hold: the same failure, no call; another feed (its own keys under AUTH=upstream) is not held by it.
    expect((await pages.read('f', 10, 50, read, live, 's')).result).toEqual(first.result);
    expect(calls).toBe(1);
    let otherCalls = 0;
    await pages.read('f2', 0, 50, async () => (otherCalls++, [event(0)]), live, 's');
    expect(otherCalls).toBe(1);
    await new Promise((r) => setTimeout(r, 1250));
    // Past it, asked again: a 404 after a 429 starts a run of its own, held HISTORY_FAILURE_HOLD_MS.
    const second = await pages.read('f', 0, 50, read, live, 's');
    expect(second.result).toEqual({ kind: 'not-found' });
    expect(second.failing!.sinceMs).toBeGreaterThan(first.failing!.sinceMs);
    expect((await pages.read('f', 0, 50, read, live, 's')).result).toEqual({ kind: 'not-found' });
    expect(calls).toBe(2);
    await new Promise((r) => setTimeout(r, 1050));
    // A second 404 goes on the same run.
    const third = await pages.read('f', 0, 50, read, live, 's');
    expect(third.failing!.sinceMs).toBe(second.failing!.sinceMs);
    // Events end it.
    await new Promise((r) => setTimeout(r, 1050));
    expect((await pages.read('f', 0, 50, read, live, 's')).result).toEqual([event(0)]);
    expect(calls).toBe(4);
    // A Retry-After of a day holds at most 300 s, as the loop's backoff caps it.
    const day = await pages.read('g', 0, 50, async () => ({ kind: 'rate-limited', retryAfterMs: 86_400_000 }), live, 's');
    expect(day.failing!.retryAtMs - Date.now()).toBeLessThanOrEqual(300_000);
  });

  it("a 429 holds the feed's reads even while others run side by side: a page sent before it and answered after does not end the hold, and one whose turn comes during it makes no call", async () => {
    // A cluster audit, 7 Dec 2026: a 429 asking for 20 s was followed within half a second by another reader's page
    // calls (its read, sent before, had answered after the 429 and ended the hold; queued reads went out anyway).
    const pages = new HistoryPages(100, undefined, undefined, 2);
    const { read, release, sent } = byHand();
    const early = pages.read('f', 800, 900, read, live, 's');
    const limited = pages.read('f', 100, 200, read, live, 's');
    // A third read waits its turn (two run at once).
    const queued = pages.read('f', 400, 500, read, live, 's');
    await new Promise((r) => setTimeout(r, 5));
    expect(sent).toEqual([800, 100]);
    release[1]!({ kind: 'rate-limited', retryAfterMs: 20_000 });
    expect((await limited).result).toEqual({ kind: 'rate-limited', retryAfterMs: 20_000 });
    await new Promise((r) => setTimeout(r, 5));
    // Its turn came during the hold: the held failure, no call (a call made would wait for a release that never comes).
    const queuedOutcome = await heldOrCalled(queued);
    expect(queuedOutcome).toEqual({ kind: 'rate-limited', retryAfterMs: 20_000 });
    expect(sent).toEqual([800, 100]);
    // The page sent before the 429 answers after it: its readers get its events, and the hold stays.
    release[0]!([event(800)]);
    expect((await early).result).toEqual([event(800)]);
    const later = await pages.read('f', 300, 400, read, live, 's');
    expect(later.result).toEqual({ kind: 'rate-limited', retryAfterMs: 20_000 });
    expect(later.failing!.retryAtMs - Date.now()).toBeGreaterThan(19_000);
    expect(sent).toEqual([800, 100]);
  });

  it("a later failure of a call sent before a 429 came back (a 502) does not shorten its hold; an answer sent before a 404 still ends a 404's run", async () => {
    // A review, 7 Dec 2026: the 502 made a new run held 1 s, and the next read called the upstream during the 20 s.
    const pages = new HistoryPages(100);
    const { read, release, sent } = byHand();
    const slow = pages.read('f', 800, 900, read, live, 's');
    const limited = pages.read('f', 100, 200, read, live, 's');
    await new Promise((r) => setTimeout(r, 5));
    release[1]!({ kind: 'rate-limited', retryAfterMs: 20_000 });
    await limited;
    release[0]!({ kind: 'transient', reason: 'HTTP 502', status: 502 });
    await slow;
    expect(pages.failureOf('f')!.retryAtMs - Date.now()).toBeGreaterThan(19_000);
    // Its readers are told the 429 while its wait is in force.
    const later = await heldOrCalled(pages.read('f', 300, 400, read, live, 's'));
    expect(later).toEqual({ kind: 'rate-limited', retryAfterMs: 20_000 });
    expect(sent).toEqual([800, 100]);

    // A 404 heard while another read was out, which then answers: the session is there, the 404 run is over.
    const g = new HistoryPages(100);
    const { read: gRead, release: gRelease } = byHand();
    const answered = g.read('g', 800, 900, gRead, live, 's');
    const missing = g.read('g', 100, 200, gRead, live, 's');
    await new Promise((r) => setTimeout(r, 5));
    gRelease[1]!({ kind: 'not-found' });
    await missing;
    expect(g.failureOf('g')?.result).toEqual({ kind: 'not-found' });
    gRelease[0]!([event(800)]);
    await answered;
    expect(g.failureOf('g')).toBeUndefined();
  });

  it("a 429's wait outlasts a later 502 and then an answer to a call sent before it came back", async () => {
    // A review, 7 Dec 2026: the 502 took the record over, and the answer after it ended the 20 s hold.
    const pages = new HistoryPages(100);
    const { read, release, sent } = byHand();
    const reads = [pages.read('f', 800, 900, read, live, 's'), pages.read('f', 100, 200, read, live, 's'), pages.read('f', 500, 600, read, live, 's')];
    await new Promise((r) => setTimeout(r, 5));
    release[1]!({ kind: 'rate-limited', retryAfterMs: 20_000 });
    await reads[1];
    release[0]!({ kind: 'transient', reason: 'HTTP 502', status: 502 });
    await reads[0];
    release[2]!([event(500)]);
    expect((await reads[2]!).result).toEqual([event(500)]);
    const later = await heldOrCalled(pages.read('f', 300, 400, read, live, 's'));
    expect(later).toEqual({ kind: 'rate-limited', retryAfterMs: 20_000 });
    expect(sent).toEqual([800, 100, 500]);
  });

  it("a 404 heard during a 429's wait and one more after it are two one-off 404s, not a 404 that lasted", async () => {
    // A review, 7 Dec 2026: the first 404 took the 429's 20 s as its own hold, and the next one joined its run.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(1_000_000);
      const pages = new HistoryPages(100);
      const { read, release } = byHand();
      const limited = pages.read('f', 100, 200, read, live, 's');
      const missing = pages.read('f', 800, 900, read, live, 's');
      await new Promise((r) => setTimeout(r, 5));
      release[0]!({ kind: 'rate-limited', retryAfterMs: 20_000 });
      await limited;
      vi.setSystemTime(1_000_100);
      release[1]!({ kind: 'not-found' });
      await missing;
      vi.setSystemTime(1_021_000);
      const again = pages.read('f', 300, 400, read, live, 's');
      await new Promise((r) => setTimeout(r, 5));
      release[2]!({ kind: 'not-found' });
      const { failing } = await again;
      expect(failing!.lastMs - failing!.sinceMs).toBe(0);
      expect(historyFailureSettled(failing)).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a failure long after the last one, or after an empty page, starts a run of its own: two one-off 404s are not a 404 that lasted', async () => {
    const pages = new HistoryPages(50);
    const outcomes: PageResult[] = [{ kind: 'not-found' }, { kind: 'not-found' }, [], { kind: 'not-found' }];
    let calls = 0;
    const read = async (): Promise<PageResult> => outcomes[calls++]!;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const first = await pages.read('f', 0, 50, read, live);
      vi.setSystemTime(Date.now() + 30_000);
      const second = await pages.read('f', 0, 50, read, live);
      expect(second.failing!.sinceMs).toBeGreaterThan(first.failing!.sinceMs);
      vi.setSystemTime(Date.now() + 1_500);
      expect((await pages.read('f', 0, 50, read, live)).result).toEqual([]);
      const fourth = await pages.read('f', 0, 50, read, live);
      expect(fourth.failing!.sinceMs).toBe(Date.now());
      expect(calls).toBe(4);
    } finally {
      vi.useRealTimers();
    }
  });

  it('readers whose start falls in a page being read join it, and its readers share the next page', async () => {
    const pages = new HistoryPages(50);
    const up = upstream(1000);
    const first = await Promise.all([10, 12, 30, 59].map((from) => pages.read('f', from, 900, up.read, live)));
    expect(up.calls).toEqual([[10, 60]]);
    expect(first.map((r) => r.start)).toEqual([10, 10, 10, 10]);
    // All go on from 60: one read; the page was shared, so a straggler a moment later gets it from memory.
    await Promise.all([0, 1, 2].map(() => pages.read('f', 60, 900, up.read, live)));
    await pages.read('f', 75, 900, up.read, live);
    expect(up.calls).toEqual([[10, 60], [60, 110]]);
  });

  it('a page that comes back too short for its waiters sends them on to one shared next read, not one each', async () => {
    const pages = new HistoryPages(50);
    const up = upstream(1000, 20);
    const results = await Promise.all([10, 30, 30, 30, 30, 30].map((from) => pages.read('f', from, 900, up.read, live)));
    expect(up.calls).toEqual([[10, 60], [30, 80]]);
    for (const r of results.slice(1)) expect(r.start).toBe(30);
  });

  it('a lone reader\'s page is not kept; a shared one goes when its time is up, looked at or not', async () => {
    const pages = new HistoryPages(50, 1024 * 1024, 100);
    const up = upstream(1000);
    await pages.read('f', 0, 900, up.read, live);
    expect(pages.keptPages).toBe(0);
    await Promise.all([pages.read('f', 0, 900, up.read, live), pages.read('f', 5, 900, up.read, live)]);
    expect(pages.keptPages).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect(pages.keptPages).toBe(0);
  });

  it('a failed page fails its waiters with it, and at most `maxReads` pages are read at once, the rest in turn', async () => {
    const failing = new HistoryPages(50);
    let calls = 0;
    const fail = async (): Promise<PageResult> => {
      calls++;
      await new Promise((r) => setTimeout(r, 20));
      return { kind: 'transient', reason: 'HTTP 500' };
    };
    const failed = await Promise.all([0, 10, 20].map((from) => failing.read('f', from, 900, fail, live)));
    expect(calls).toBe(1);
    for (const r of failed) expect(r.result).toEqual({ kind: 'transient', reason: 'HTTP 500' });

    const pages = new HistoryPages(10, 1024 * 1024, 30_000, 3);
    const up = upstream(10_000);
    const all = await Promise.all(Array.from({ length: 12 }, (_, k) => pages.read(`feed-${k}`, 0, 900, up.read, live)));
    expect(up.maxRunning()).toBe(3);
    expect(all.every((r) => Array.isArray(r.result) && r.result.length === 10)).toBe(true);
  });

  it('a page whose readers all left before its turn is not read', async () => {
    const pages = new HistoryPages(10, 1024 * 1024, 30_000, 1);
    const up = upstream(1000, Infinity, 100);
    const busy = pages.read('a', 0, 900, up.read, live);
    const left = new AbortController();
    const gone = pages.read('b', 0, 900, up.read, left.signal);
    left.abort();
    expect((await gone).result).toEqual({ kind: 'aborted' });
    await busy;
    expect(up.calls).toEqual([[0, 10]]);
  });

  it('a reader that stays is never handed the abort of one that left, when a short page sends both on', async () => {
    const pages = new HistoryPages(10);
    const up = upstream(1000, 3);
    const creator = pages.read('f', 0, 900, up.read, live);
    const leaving = new AbortController();
    const left = pages.read('f', 5, 900, up.read, leaving.signal);
    const stays = pages.read('f', 6, 900, up.read, live);
    leaving.abort();
    expect(Array.isArray((await creator).result)).toBe(true);
    expect((await left).result).toEqual({ kind: 'aborted' });
    const got = await stays;
    expect(Array.isArray(got.result)).toBe(true);
    expect(got.start).toBeLessThanOrEqual(6);
    expect((got.result as UpstreamEvent[]).length).toBeGreaterThan(6 - got.start);
  });

  it('a feed whose upstream is slow holds at most its share of the reads: another feed\'s page is read at once, and waiting feeds take turns', async () => {
    const pages = new HistoryPages(10, 1024 * 1024, 30_000, 4, 2);
    const { started, held, reader: slow, releaseAll } = heldReaders();
    // Ten readers of feed `a`, each at a page of its own (no sharing): two run, eight wait.
    const a = Array.from({ length: 10 }, (_, k) => pages.read('a', k * 100, 10_000, slow('a'), live));
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toEqual(['a@0', 'a@100']);
    // Feed `b` is not held behind them, nor is `c`.
    const b = pages.read('b', 0, 10_000, slow('b'), live);
    const c = [0, 100, 200].map((from) => pages.read('c', from, 10_000, slow('c'), live));
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toEqual(['a@0', 'a@100', 'b@0', 'c@0']);
    // Places freed go to the waiting feeds in turn (a, then c), each within its share.
    held.shift()!();
    held.shift()!();
    await new Promise((r) => setTimeout(r, 20));
    expect(started.slice(4)).toEqual(['a@200', 'c@100']);
    await releaseAll();
    const all = await Promise.all([...a, b, ...c]);
    expect(all.every((r) => Array.isArray(r.result) && r.result.length === 10)).toBe(true);
    expect(started).toHaveLength(14);
  });

  it('a session\'s feeds (with and without details) share one share of the reads', async () => {
    const pages = new HistoryPages(10, 1024 * 1024, 30_000, 4, 2);
    const { started, reader: slow, releaseAll } = heldReaders();
    const reads = [
      ...[0, 100].map((from) => pages.read('d:s', from, 10_000, slow('d'), live, 's')),
      ...[0, 100].map((from) => pages.read('n:s', from, 10_000, slow('n'), live, 's')),
      pages.read('d:t', 0, 10_000, slow('t'), live, 't'),
    ];
    await new Promise((r) => setTimeout(r, 20));
    expect(started).toEqual(['d@0', 'd@100', 't@0']);
    await releaseAll();
    expect((await Promise.all(reads)).every((r) => Array.isArray(r.result) && r.result.length === 10)).toBe(true);
    expect(started).toHaveLength(5);
  });
});
