/**
 * Durable Stream offsets across a cluster: the version of a status (the `S`
 * of an offset) is the time the shared log first wrote it, on Redis's clock,
 * so every instance, and an instance started later, gives the same status the
 * same version. A reader that moves between instances with the offset it was
 * given gets each status change once, none missed, then the end record.
 */
import { expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { ACQUIRE, APPEND, decodeEntries, decodeMeta, logKeys, RELEASE } from '../../src/transport/redis-log.ts';
import { connectRedis } from '../../src/transport/redis-conn.ts';
import { RedisLogSink, stateJsonOf } from '../../src/transport/redis-sink.ts';
import { Stats } from '../../src/metrics.ts';
import { UNKNOWN_SNAPSHOT } from '../../src/upstream/snapshot.ts';
import { silentLogger } from '../../src/log.ts';
import { eventually, range } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();
const READ_TIMEOUT_MS = 30_000;

/** One Durable Stream reader that keeps its offset, whichever instance it asks. */
function durableReader(sessionId: string) {
  const r = {
    offset: '-1',
    items: [] as any[],
    closed: false,
    /** One read at `base` from the reader's offset (catch-up, or a long-poll). */
    async read(base: string, live = false): Promise<any[]> {
      const res = await fetch(`${base}/v1/stream/sessions/${sessionId}?offset=${r.offset}${live ? '&live=long-poll' : ''}`, { signal: AbortSignal.timeout(READ_TIMEOUT_MS) });
      expect([200, 204], `read at ${r.offset}`).toContain(res.status);
      const items = res.status === 200 ? ((await res.json()) as any[]) : [];
      r.items.push(...items);
      r.offset = res.headers.get('stream-next-offset')!;
      r.closed = res.headers.get('stream-closed') === 'true';
      return items;
    },
    /** Long-polls at `base` until `done` holds for what was read. */
    async readUntil(base: string, done: () => boolean, what: string): Promise<void> {
      const deadline = Date.now() + READ_TIMEOUT_MS;
      while (!done()) {
        if (Date.now() > deadline || r.closed) throw new Error(`timed out waiting for ${what}; read ${JSON.stringify(r.items)}`);
        await r.read(base, true);
      }
    },
    statuses: () => r.items.filter((m) => m.event === 'status'),
  };
  return r;
}

/** The status version an offset names (its `S` part). */
const versionOf = (offset: string) => Number(offset.split('_')[1]);

it('a reader moving between instances, and to one started later, with the offsets it was given: each status once, none missed, then the end', async () => {
  parts.redis = await startRedis();
  parts.sim = await createSimulator({});
  const start = serverStarter(parts);
  const [a, b] = [await start(), await start()];
  parts.sim.createSession('dv-1', { initialEvents: 3 });
  const reader = durableReader('dv-1');

  await reader.readUntil(a.url, () => reader.statuses().some((s) => s.status === 'running'), 'the running status on A');
  expect(reader.items.filter((m) => typeof m.index === 'number').map((m) => m.index)).toEqual(range(3));
  // Each instance's clock of first read is later than the version A gave (what made B give it again).
  const seen = versionOf(reader.offset);
  await eventually(() => Date.now() > seen + 2, 1000, 'the clock to pass the version A gave');

  expect(await reader.read(b.url), 'B, from A\'s offset: nothing new').toEqual([]);
  parts.sim.setStatus('dv-1', { status: 'idle' });
  await reader.readUntil(b.url, () => reader.statuses().some((s) => s.status === 'idle'), 'the idle status on B');
  await eventually(() => Date.now() > versionOf(reader.offset) + 2, 1000, 'the clock to pass the version B gave');
  expect(await reader.read(a.url), 'back on A, from B\'s offset: nothing new').toEqual([]);

  // An instance started now (as after a restart) has read nothing of the session yet.
  const c = await start();
  expect(await reader.read(c.url), 'a new instance, from A\'s offset: nothing new').toEqual([]);
  parts.sim.finish('dv-1', { status: 'completed', answer: 'done' });
  await reader.readUntil(c.url, () => reader.closed, 'the end on the new instance');

  const statuses = reader.statuses().map((s) => JSON.stringify(s));
  expect(new Set(statuses).size, `no status repeated: ${statuses.join(' ')}`).toBe(statuses.length);
  expect(reader.statuses().map((s) => s.status)).toEqual(expect.arrayContaining(['running', 'idle']));
  expect(reader.statuses().findIndex((s) => s.status === 'idle')).toBeGreaterThan(reader.statuses().findIndex((s) => s.status === 'running'));
  expect(reader.items.filter((m) => typeof m.index === 'number').map((m) => m.index)).toEqual(range(3));
  expect(reader.items.at(-1)).toMatchObject({ event: 'end', status: 'completed', answer: 'done', last_index: 2 });
  expect(reader.offset).toBe('0000000000000003_end');
}, 60_000);

it('the log dates a status when what readers see of it changes, on Redis\'s clock, strictly increasing; an unchanged one keeps its date', async () => {
  parts.redis = await startRedis();
  const redis = parts.redis;
  const k = logKeys('dv-test:', 'dv-2', true);
  const evalScript = (script: { source: string }, keys: string[], args: string[]) => redis.command('EVAL', script.source, String(keys.length), ...keys, ...args) as Promise<any[]>;
  const [, , token] = await evalScript(ACQUIRE, [k.lease, k.meta], ['test', '60000', '60000', '', 'born-1']);
  const state = (status: string, synced: boolean) => JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status }, upstreamError: null, synced });
  const append = (from: number, events: string[], stateJson: string, shown: '0' | '1') =>
    evalScript(APPEND, [k.lease, k.meta, k.log], [`${token}:test`, String(token), from === 0 ? '0' : '', String(from), '1000', '60000', stateJson, '', shown, ...events]);
  const ev = JSON.stringify({ type: 't', data: {}, timestamp: 'ts' });

  const before = Number(((await redis.command('TIME')) as string[])[0]) * 1000;
  expect(await append(0, [], state('running', false), '1')).toEqual(['ok', 0]);
  expect(await append(0, [ev], state('running', true), '0')).toEqual(['ok', 1]);
  expect(await append(1, [], state('idle', true), '1')).toEqual(['ok', 1]);
  expect(await append(1, [], state('running', true), '1')).toEqual(['ok', 1]);
  const entries = decodeEntries((await redis.command('XRANGE', k.log, '-', '+')) as Array<[string, string[]]>).filter((e) => e.kind === 'state');
  const since = entries.map((e) => (e.kind === 'state' ? e.since : null) as number);
  expect(since[0]).toBeGreaterThanOrEqual(before);
  expect(since[0]).toBeLessThan(before + 60_000);
  expect(since[1], 'a synced flip only: the same date').toBe(since[0]);
  expect(since[2]).toBeGreaterThan(since[1]!);
  expect(since[3], 'even within one millisecond').toBeGreaterThan(since[2]!);
  expect(decodeMeta((await redis.command('HGETALL', k.meta)) as string[]).statusSince).toBe(since[3]);
});

it('a leader\'s sink asks the log for a new date only when the status readers see changes, also across a new lease term', async () => {
  parts.redis = await startRedis();
  const conn = connectRedis({ url: parts.redis.url, log: silentLogger(), stats: new Stats() });
  try {
    await eventually(() => conn.state === 'ok', 5000, 'redis');
    const keys = logKeys('dv-sink:', 's', true);
    const running = { ...UNKNOWN_SNAPSHOT, status: 'running' };
    const update = (snapshot: typeof running, synced: boolean, upstreamError: string | null = null) => ({ fromIndex: 0, events: [], snapshot, synced, upstreamError });
    /** A leader term's sink from what the log's meta holds now, as the transport starts one. */
    const lead = async () => {
      const [, , token] = await conn.run<any[]>('acquire', ACQUIRE, [keys.lease, keys.meta], ['test', '600000', '600000', '', 'born-1']);
      const meta = decodeMeta(await conn.call<string[]>('hgetall', ['HGETALL', keys.meta]));
      const term = { keys, leaseValue: `${token}:test`, token: Number(token), maxEntries: 1000, retentionMs: 600_000, signal: new AbortController().signal };
      const start = { sessionId: 's', includeEvents: true, nextIndex: 0, baseIndex: 0, snapshot: meta.state?.snapshot ?? UNKNOWN_SNAPSHOT, stateJson: meta.state ? stateJsonOf(meta.state) : '' };
      return { sink: new RedisLogSink(conn, start, term, silentLogger()), leaseValue: term.leaseValue };
    };
    /** The dates of the log's status entries, in order. */
    const dates = async () =>
      decodeEntries(await conn.call<Array<[string, string[]]>>('xrange', ['XRANGE', keys.log, '-', '+'])).flatMap((e) => (e.kind === 'state' ? [e.since] : []));

    const first = await lead();
    const sink = first.sink;
    await sink.publish(update(running, false));
    await sink.publish(update(running, true));
    await sink.publish(update(running, true, 'upstream 503'));
    await sink.publish(update({ ...running, status: 'idle' }, true));
    const [d0, d1, d2, d3] = await dates();
    expect(d1, 'a synced flip only: the same date').toBe(d0);
    expect(d2, 'an upstream_error shown').toBeGreaterThan(d1!);
    expect(d3, 'a new status').toBeGreaterThan(d2!);

    // A new leader starts from the log's state: the same status shown is not dated again; a new one is.
    await conn.run('release', RELEASE, [keys.lease, keys.meta, keys.log], [first.leaseValue, '1000', '600000']);
    const { sink: next } = await lead();
    await next.publish(update({ ...running, status: 'idle' }, false));
    await next.publish(update({ ...running, status: 'paused' }, false));
    const [, , , , e4, e5] = await dates();
    expect(e4, 'the same status under a new leader').toBe(d3);
    expect(e5).toBeGreaterThan(d3!);
  } finally {
    await conn.close();
  }
});
