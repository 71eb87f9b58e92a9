/** The session list's state: versions, the change log a reconnect resumes from, live merging, the viewer's limits, and filter checks. */
import { describe, it, expect } from 'vitest';
import { admits, ListFeed, parseListCursor, type ListFilter, type LiveStatus } from '../../src/hub/list-feed.ts';
import { parseListFilter } from '../../src/http/list-query.ts';
import { BadRequestError } from '../../src/errors.ts';

const filter = (statuses?: string[]): ListFilter => ({ params: new URLSearchParams(), key: '', logKey: '', statuses: statuses ? new Set(statuses) : undefined });
const row = (id: string, status = 'running') => ({ id, status, created_at: '2026-01-01T00:00:00Z' });
const listing = (...items: ReturnType<typeof row>[]) => ({ items, total: items.length, calls: 1 });
const none = () => undefined;

/** Parses an encoded frame into its fields. */
function fields(frame: Buffer): { event?: string; id?: string; data: any } {
  const out: Record<string, string> = {};
  for (const line of frame.toString('utf8').split('\n')) {
    const m = /^(\w+): (.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return { event: out.event, id: out.id, data: out.data ? JSON.parse(out.data) : undefined };
}

function recorder() {
  const got: Array<{ event?: string; id?: string; data: any }> = [];
  return { got, listener: { onChange: (_id: string, f: Buffer) => got.push(fields(f)), onTrouble: (f: Buffer) => got.push(fields(f)), onListed: (s: (a: undefined) => Buffer) => got.push(fields(s(undefined))), onRefused: (code: string) => got.push({ event: 'refused', data: code }) } };
}

describe('ListFeed: the count and the loops behind', () => {
  it('sends event: total when the count moves, and never to a viewer limited to some sessions, even one whose claim holds ""', () => {
    const feed = new ListFeed('k', filter(), 100);
    feed.applyListing({ items: [row('a')], total: 5, calls: 1 }, none);
    const at = parseListCursor(feed.cursor)!;
    const r = recorder();
    feed.listeners.add(r.listener);
    feed.applyListing({ items: [row('a')], total: 6, calls: 1 }, none);
    expect(r.got.map((f) => [f.event, f.data])).toEqual([['total', { total: 6 }]]);
    expect(feed.changesSince(at, undefined)!.map(fields).map((f) => f.event)).toEqual(['total']);
    expect(feed.changesSince(at, new Set(['a', '']))).toEqual([]);
    expect(admits(new Set(['a', '']), ''), 'the total is nobody\'s session').toBe(false);
    expect(admits(undefined, '')).toBe(true);
  });

  it('names the sessions whose listed status moved (or came new) to one their loop does not show, not those of a first listing', () => {
    const feed = new ListFeed('k', filter(), 100);
    const running: LiveStatus = { status: 'running', metrics: {} };
    // First listing: the list may lag behind the loop; nothing to ask.
    expect(feed.applyListing(listing(row('a', 'paused'), row('b', 'running')), () => running)).toEqual([]);
    // A session new to a later listing (it entered a filter) with a status its loop does not show: asked.
    expect(feed.applyListing(listing(row('a', 'paused'), row('b', 'running'), row('c', 'paused')), () => running)).toEqual(['c']);
    // Unchanged since: nothing either.
    expect(feed.applyListing(listing(row('a', 'paused'), row('b', 'running')), () => running)).toEqual([]);
    // b moved to paused on the list while its loop says running: its loop is behind.
    expect(feed.applyListing(listing(row('a', 'paused'), row('b', 'paused')), () => running)).toEqual(['b']);
    // Moved to what the loop shows: nothing.
    expect(feed.applyListing(listing(row('a', 'running'), row('b', 'paused')), (id) => (id === 'a' ? running : { status: 'paused', metrics: {} }))).toEqual([]);
  });
});

describe('ListFeed: sessions a read of several pages missed', () => {
  const paged = (...items: ReturnType<typeof row>[]) => ({ items, total: items.length, calls: 2 });
  const running: LiveStatus = { status: 'running', metrics: {} };

  it('keeps one for a poll, in its place, and removes it when the next read misses it too; a one-call read removes at once', () => {
    const feed = new ListFeed('k', filter(), 100);
    feed.applyListing(paged(row('a'), row('b'), row('c'), row('d')), none);
    const r = recorder();
    feed.listeners.add(r.listener);
    feed.applyListing(paged(row('a'), row('c'), row('d')), none);
    expect(r.got).toEqual([]);
    // Kept where it was (after a), not at the end: a snapshot now keeps the upstream's order.
    expect(fields(feed.snapshotFrame(undefined)).data.items.map((x: { id: string }) => x.id)).toEqual(['a', 'b', 'c', 'd']);
    const removes = () => r.got.filter((f) => f.event === 'remove').map((f) => f.data.id);
    feed.applyListing(paged(row('a'), row('c'), row('d')), none);
    expect(removes()).toEqual(['b']);
    // One kept whose neighbour before it is gone too goes before the one it preceded, after any new ones.
    const order = new ListFeed('k2', filter(), 100);
    order.applyListing(paged(row('x'), row('y')), none);
    order.applyListing(paged(row('n'), row('y')), none);
    expect(fields(order.snapshotFrame(undefined)).data.items.map((i: { id: string }) => i.id)).toEqual(['n', 'x', 'y']);
    // Back, then missed by a read of one call: gone at once.
    feed.applyListing(paged(row('a'), row('b'), row('c'), row('d')), none);
    r.got.length = 0;
    feed.applyListing(listing(row('a'), row('c'), row('d')), none);
    expect(removes()).toEqual(['b']);
  });

  it('has the loop of one that left a list filtered by status ask at once, kept or not, unless the loop already shows it outside the filter', () => {
    const feed = new ListFeed('k', filter(['running']), 100);
    const rows = Array.from({ length: 5 }, (_, i) => row(`s${i}`));
    feed.applyListing(paged(...rows), () => running);
    // s2 left the filter upstream (its loop still says running): asked now, though the read of two calls keeps it a poll.
    expect(feed.applyListing(paged(...rows.filter((x) => x.id !== 's2')), () => running)).toEqual(['s2']);
    // s3 left it too, and both loops show paused by now: nothing to ask (they go with the live status).
    const paused: LiveStatus = { status: 'paused', metrics: {} };
    expect(feed.applyListing(listing(...rows.filter((x) => x.id !== 's2' && x.id !== 's3')), (id) => (id === 's2' || id === 's3' ? paused : running))).toEqual([]);
  });
});

describe('ListFeed', () => {
  it('upserts new and changed sessions and removes vanished ones, each with a growing version', () => {
    const feed = new ListFeed('k', filter(), 100);
    feed.applyListing(listing(row('a'), row('b')), none);
    const r = recorder();
    feed.listeners.add(r.listener);
    feed.applyListing(listing(row('a', 'completed'), row('c')), none);
    expect(r.got.map((f) => [f.event, f.data.id, f.data.status])).toEqual([
      ['remove', 'b', undefined],
      ['upsert', 'a', 'completed'],
      ['upsert', 'c', 'running'],
    ]);
    const versions = r.got.map((f) => parseListCursor(f.id!)!.version);
    expect(versions).toEqual([3, 4, 5]);
    // The same listing again changes nothing.
    feed.applyListing(listing(row('a', 'completed'), row('c')), none);
    expect(r.got).toHaveLength(3);
  });

  it('resumes with each session\'s latest change once, or null for another epoch or a version the log lost', () => {
    const feed = new ListFeed('k', filter(), 3);
    feed.applyListing(listing(row('a'), row('b')), none);
    const at = parseListCursor(feed.cursor)!;
    feed.applyListing(listing(row('a', 'idle'), row('b')), none);
    feed.applyListing(listing(row('a', 'running'), row('b')), none);
    const missed = feed.changesSince(at, undefined)!.map(fields);
    expect(missed.map((f) => [f.event, f.data.id, f.data.status])).toEqual([['upsert', 'a', 'running']]);
    expect(missed[0]!.id).toBe(feed.cursor);
    expect(feed.changesSince(parseListCursor(feed.cursor)!, undefined)).toEqual([]);
    expect(feed.changesSince({ epoch: 'abc', version: at.version }, undefined)).toBeNull();
    // Three more changes: the log (3 entries) no longer reaches `at`.
    feed.applyListing(listing(row('a', 'idle'), row('b', 'idle')), none);
    feed.applyListing(listing(row('a', 'running'), row('b', 'running')), none);
    expect(feed.changesSince(at, undefined)).toBeNull();
  });

  it('gives an end the loop heard before the list shows it the loop\'s finished_at, not a terminal status beside finished_at: null', () => {
    // Audit, 7 Dec 2026: `completed` with `finished_at: null` until the next poll (1.5 s), where the session's own
    // stream said both.
    const feed = new ListFeed('k', filter(), 100);
    const items = [{ ...row('a'), finished_at: null }, { ...row('b', 'completed'), finished_at: '2026-01-01T00:00:09Z' }];
    feed.applyListing({ items, total: 2, calls: 1 }, none);
    const r = recorder();
    feed.listeners.add(r.listener);
    feed.applyLive('a', { status: 'completed', metrics: {}, finished_at: '2026-01-01T00:00:05Z' });
    expect(r.got.at(-1)).toMatchObject({ event: 'upsert', data: { id: 'a', status: 'completed', finished_at: '2026-01-01T00:00:05Z' } });
    // A list that has its own finished_at: the row as listed.
    feed.applyLive('b', { status: 'completed', metrics: {}, finished_at: '2026-01-01T00:00:08Z' });
    expect(fields(feed.snapshotFrame(undefined)).data.items.find((i: { id: string }) => i.id === 'b').finished_at).toBe('2026-01-01T00:00:09Z');
    // A loop still running (its finished_at a changes answer's claim /status has not confirmed) beside a listed end:
    // not taken (a review).
    const c = new ListFeed('k', filter(), 100);
    c.applyListing({ items: [{ ...row('c', 'completed'), finished_at: null }], total: 1, calls: 1 }, none);
    c.applyLive('c', { status: 'running', metrics: {}, finished_at: '2026-01-01T00:00:07Z' });
    expect(fields(c.snapshotFrame(undefined)).data.items[0]).toMatchObject({ status: 'completed', finished_at: null });
  });

  it('merges a loop\'s live status and metrics, and hides a session whose live status leaves the filter', () => {
    const feed = new ListFeed('k', filter(['running']), 100);
    const live = new Map<string, LiveStatus>();
    feed.applyListing(listing(row('a'), row('b')), (id) => live.get(id));
    const r = recorder();
    feed.listeners.add(r.listener);
    live.set('a', { status: 'running', metrics: { steps: 3, total_cost: 0.5 } });
    feed.applyLive('a', live.get('a'));
    expect(r.got.at(-1)).toMatchObject({ event: 'upsert', data: { id: 'a', status: 'running', metrics: { total_cost: 0.5 } } });
    live.set('a', { status: 'completed', metrics: { steps: 4, total_cost: 0.6 } });
    feed.applyLive('a', live.get('a'));
    // Out of the filter: removed, and the filter's count is one less.
    expect(r.got.slice(-2)).toMatchObject([{ event: 'remove', data: { id: 'a' } }, { event: 'total', data: { total: 1 } }]);
    const snap = fields(feed.snapshotFrame(undefined));
    expect(snap.data.items.map((i: { id: string }) => i.id)).toEqual(['b']);
    expect(snap.data.total).toBe(1);
  });

  it('limits a snapshot and a resume to the sessions a viewer may see, and counts only those', () => {
    const feed = new ListFeed('k', filter(), 100);
    feed.applyListing({ items: [row('a'), row('b'), row('c')], total: 40, calls: 1 }, none);
    const at = parseListCursor(feed.cursor)!;
    expect(fields(feed.snapshotFrame(undefined)).data.total).toBe(40);
    const snap = fields(feed.snapshotFrame(new Set(['b', 'z'])));
    expect(snap.data).toEqual({ items: [row('b')], total: 1 });
    feed.applyListing({ items: [row('a', 'idle'), row('b'), row('c')], total: 40, calls: 1 }, none);
    expect(feed.changesSince(at, new Set(['b']))).toEqual([]);
  });

  it('sends a viewer that joined before the first listing one snapshot, not one upsert per session', () => {
    const feed = new ListFeed('k', filter(), 100);
    const r = recorder();
    feed.listeners.add(r.listener);
    feed.failed('list: HTTP 503');
    feed.applyListing(listing(row('a'), row('b')), none);
    expect(r.got.map((f) => f.event)).toEqual(['status', 'status', 'snapshot']);
    expect(r.got[0]!.data).toEqual({ upstream_error: 'list: HTTP 503' });
    expect(r.got[1]!.data).toEqual({ upstream_error: null });
    expect(r.got[2]!.data.items).toHaveLength(2);
  });
});

describe('parseListFilter', () => {
  const parse = (q: string) => parseListFilter(new URLSearchParams(q));
  it('puts the same filter written two ways in one canonical form', () => {
    expect(parse('status=running&search=x&status=idle').key).toBe(parse('search=x&status=idle&status=running&access_token=t').key);
    expect(parse('status=running&status=idle').statuses).toEqual(new Set(['running', 'idle']));
    expect(parse('').key).toBe('');
  });
  it('takes one page (page, size) and a date alone, passed on as written', () => {
    expect(parse('size=20&sort=-created_at&page=2').key).toBe('page=2&size=20&sort=-created_at');
    expect(parse('size=100').key).toBe('size=100');
    expect(parse('page=01&size=020').key, 'one list, one poll').toBe(parse('page=1&size=20').key);
    expect(parse('created_after=2026-01-01').key).toBe('created_after=2026-01-01');
  });
  it.each([
    ['unknown filter', 'colour=red'],
    ['bad status', 'status=done'],
    ['bad owner', 'owner=everyone'],
    ['bad date', 'created_after=yesterday'],
    ['page 0', 'page=0'],
    ['page not an integer', 'page=2.5'],
    ['size past the API\'s 100', 'size=101'],
    ['size 0', 'size=0'],
    ['repeated size', 'size=5&size=6'],
    ['bad calendar date', 'created_after=2026-02-30'],
    ['empty value', 'search='],
    ['repeated single filter', 'search=a&search=b'],
    ['control character', 'search=a%0Ab'],
    ['too long', `search=${'x'.repeat(201)}`],
    ['bad uuid', 'schedule_id=nope'],
  ])('refuses %s', (_what, q) => {
    expect(() => parse(q)).toThrow(BadRequestError);
  });
});

describe('a list filter in logs', () => {
  it('shows a token a viewer put in a filter as [REDACTED], and the rest as it is', () => {
    // An operator audit (7 Dec 2026): `search=eyJ….eyJ….SIG` was logged whole on "list stream open" and "closed".
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.LEAKSIG';
    const f = parseListFilter(new URLSearchParams({ search: jwt, status: 'running' }));
    expect(f.key).toContain(jwt);
    expect(f.logKey).not.toContain('LEAKSIG');
    expect(f.logKey).toContain('status=running');
  });
});

