/**
 * The shared log's scripts on a real redis-server: a deposed leader's late
 * append and a duplicate (or skipped) index fail inside Redis; the lease is
 * taken once, kept by its holder, counted as a takeover only when the last
 * holder vanished; entries land at the ids the readers rely on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.ts';
import { Stats } from '../../src/metrics.ts';
import { connectRedis, type RedisConn } from '../../src/transport/redis-conn.ts';
import { ACQUIRE, APPEND, decodeEntries, decodeMeta, logKeys, READ, RELEASE, RENEW, type LogKeys } from '../../src/transport/redis-log.ts';
import { eventually } from '../helpers/harness.ts';
import { suiteRedis } from '../helpers/redis.ts';

const LEASE_MS = 2000;
const RETENTION_MS = 60_000;
const ev = (n: number) => JSON.stringify({ type: 't', data: { n }, timestamp: `ts-${n}` });
const state = (status: string) => JSON.stringify({ snapshot: { status }, upstreamError: null, synced: true });

let redis: Awaited<ReturnType<typeof suiteRedis>>;
let conn: RedisConn;
let n = 0;
// Unique per process and test: the suite's Redis may be shared with other test files.
const fresh = (): LogKeys => logKeys(`test-${process.pid}-${++n}:`, 'sess-1', true);

const acquire = (k: LogKeys, instance: string, mine = '') => conn.run<any[]>('acquire', ACQUIRE, [k.lease, k.meta], [instance, String(LEASE_MS), String(RETENTION_MS), mine, `born-${instance}`]);
const append = (k: LogKeys, value: string, token: number, from: number, events: string[], opts: { state?: string; end?: string; resetTo?: string } = {}) =>
  conn.run<any[]>('append', APPEND, [k.lease, k.meta, k.log], [value, String(token), opts.resetTo ?? '', String(from), '1000', String(RETENTION_MS), opts.state ?? '', opts.end ?? '', '1', ...events]);
const ids = async (k: LogKeys) => ((await redis.command('XRANGE', k.log, '-', '+')) as Array<[string, string[]]>).map(([id]) => id);

beforeAll(async () => {
  redis = await suiteRedis();
  conn = connectRedis({ url: redis.url, log: silentLogger(), stats: new Stats() });
  await eventually(() => conn.state === 'ok', 5000, 'redis connection');
});
afterAll(async () => {
  await conn?.close();
  await redis?.stop();
});

describe('shared log scripts', () => {
  it('a deposed leader cannot append: its lease value is gone, whatever it believes', async () => {
    const k = fresh();
    const a = await acquire(k, 'A');
    expect(a.slice(0, 4)).toEqual(['acquired', 'born-A', 1, 0]);
    expect(await append(k, '1:A', 1, 0, [ev(0), ev(1)], { resetTo: '0' })).toEqual(['ok', 2]);
    // A lease key gone before its time (evicted, deleted) is not taken until then: A may still be running.
    await redis.command('DEL', k.lease);
    const early = await acquire(k, 'B');
    expect(early[0]).toBe('held');
    expect(Number(early[2])).toBeGreaterThan(0);
    // A stalls past its lease (the key and its time both past); B takes over and writes on.
    await redis.command('HSET', k.meta, 'until', '0');
    const b = await acquire(k, 'B');
    expect(b[0]).toBe('acquired');
    expect(b[2]).toBe(2);
    expect(b[3]).toBe(1); // A never released: a takeover
    expect(b[4]).toBe('2'); // the log's next index, where B resumes
    expect(await append(k, '2:B', 2, 2, [ev(2)])).toEqual(['ok', 3]);
    // A wakes up and appends what it read meanwhile: refused in Redis, nothing written.
    expect(await append(k, '1:A', 1, 2, [ev(2), ev(3)])).toEqual(['lease']);
    expect(await ids(k)).toEqual(['1-0', '2-0', '3-0']);
    // Even holding the lease key's value, an older token is refused by the meta's fence.
    await redis.command('SET', k.lease, '1:A');
    expect(await append(k, '1:A', 1, 3, [ev(3)])).toEqual(['fence']);
    expect(await ids(k)).toEqual(['1-0', '2-0', '3-0']);
  });

  it('a duplicate index, or a skipped one, is refused; statuses land between events at n-k', async () => {
    const k = fresh();
    await acquire(k, 'A');
    expect(await append(k, '1:A', 1, 0, [], { state: state('queued'), resetTo: '0' })).toEqual(['ok', 0]);
    expect(await append(k, '1:A', 1, 0, [ev(0), ev(1)], { state: state('running') })).toEqual(['ok', 2]);
    expect(await append(k, '1:A', 1, 1, [ev(1)])).toEqual(['index', 2]); // duplicate of index 1
    expect(await append(k, '1:A', 1, 3, [ev(3)])).toEqual(['index', 2]); // index 2 skipped
    expect(await append(k, '1:A', 1, 2, [], { state: state('running') })).toEqual(['ok', 2]);
    expect(await ids(k)).toEqual(['0-1', '1-0', '2-0', '2-1', '2-2']);
    // Redis itself would refuse a smaller id too: the script checks before writing anything.
    const [flat, raw] = await conn.run<[string[], Array<[string, string[]]>]>('read', READ, [k.meta, k.log], ['-', '100']);
    const meta = decodeMeta(flat);
    expect(meta).toMatchObject({ born: 'born-A', base: 0, next: 2, ended: false });
    expect(decodeEntries(raw).map((e) => (e.kind === 'event' ? e.index : e.kind))).toEqual(['state', 0, 1, 'state', 'state']);
  });

  it('an empty log may move its start back (the loop found fewer events than asked for); a non-empty one may not', async () => {
    const k = fresh();
    await acquire(k, 'A');
    expect(await append(k, '1:A', 1, 9, [], { state: state('running'), resetTo: '9' })).toEqual(['ok', 9]);
    expect(await append(k, '1:A', 1, 0, [ev(0)], { resetTo: '0' })).toEqual(['ok', 1]);
    expect(await append(k, '1:A', 1, 0, [ev(0)], { resetTo: '0' })).toEqual(['index', 1]);
    expect(await ids(k)).toEqual(['0-1', '1-0']);
  });

  it('the end: "over" closes the log for good and later appends and leases are refused; "refused" does not', async () => {
    const k = fresh();
    await acquire(k, 'A');
    await append(k, '1:A', 1, 0, [ev(0)], { state: state('running'), resetTo: '0' });
    expect(await append(k, '1:A', 1, 1, [], { state: state('failed'), end: 'refused' })).toEqual(['ok', 1]);
    expect(decodeMeta(((await conn.run<any[]>('read', READ, [k.meta, k.log], ['-', '1'])) as any)[0]).ended).toBe(false);
    expect(await append(k, '1:A', 1, 1, [], { state: state('completed'), end: 'over' })).toEqual(['ok', 1]);
    expect(await append(k, '1:A', 1, 1, [ev(1)])).toEqual(['ended']);
    expect((await acquire(k, 'B'))[0]).toBe('ended');
    const entries = decodeEntries(((await conn.run<any[]>('read', READ, [k.meta, k.log], ['-', '10'])) as any)[1]);
    expect(entries.filter((e) => e.kind === 'state').map((e) => (e.kind === 'state' ? e.end : null))).toEqual([null, 'refused', 'over']);
    // Retention: the log expires after the end.
    const ttl = (await redis.command('PTTL', k.log)) as number;
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(RETENTION_MS);
  });

  it('the lease: held by one, kept (same token) by its holder, released with a marker, then taken without counting a takeover', async () => {
    const k = fresh();
    expect((await acquire(k, 'A'))[2]).toBe(1);
    const held = await acquire(k, 'B');
    expect(held[0]).toBe('held');
    expect(held[2]).toBeGreaterThan(0);
    expect(held[2]).toBeLessThanOrEqual(LEASE_MS);
    expect((await acquire(k, 'A', '1:A')).slice(0, 3)).toEqual(['acquired', 'born-A', 1]);
    expect(await conn.run('renew', RENEW, [k.lease, k.meta, k.log], ['1:A', String(LEASE_MS), String(RETENTION_MS)])).toEqual(['ok', 'born-A']);
    expect(await conn.run('renew', RENEW, [k.lease, k.meta, k.log], ['9:B', String(LEASE_MS), String(RETENTION_MS)])).toEqual(['lost', 'born-A']);
    expect(await conn.run('release', RELEASE, [k.lease, k.meta, k.log], ['9:B', '1000', String(RETENTION_MS)])).toBe(0);
    expect(await conn.run('release', RELEASE, [k.lease, k.meta, k.log], ['1:A', '1000', String(RETENTION_MS)])).toBe(1);
    expect(decodeEntries(((await conn.run<any[]>('read', READ, [k.meta, k.log], ['-', '10'])) as any)[1]).map((e) => e.kind)).toEqual(['released']);
    const b = await acquire(k, 'B');
    expect(b.slice(0, 4)).toEqual(['acquired', 'born-A', 2, 0]);
    // The lease runs out by itself.
    await eventually(async () => (await redis.command('EXISTS', k.lease)) === 0, 5000, 'lease expiry');
  });
});
