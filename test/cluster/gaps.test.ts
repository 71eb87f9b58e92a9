/**
 * What Redis loses, the upstream gives back: a reader that finds indices
 * missing from the shared log (the log replaced by one starting further on,
 * or trimmed) fills them in from upstream by index, so subscribers stay
 * exact. Here the test itself holds a session's lease and writes its log
 * through the same fenced script a leader uses, so it can make the gap.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { Stats } from '../../src/metrics.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { connectRedis, type RedisConn } from '../../src/transport/redis-conn.ts';
import { ACQUIRE, APPEND, logKeys } from '../../src/transport/redis-log.ts';
import { UNKNOWN_SNAPSHOT } from '../../src/upstream/snapshot.ts';
import { eventually, range, record, type Recorder } from '../helpers/harness.ts';
import { recordMany } from '../helpers/multi.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { CLUSTER_ENV } from './helpers.ts';

let redis: RedisServer | undefined;
let sim: Simulator | undefined;
let conn: RedisConn | undefined;
const servers: PollcastServer[] = [];
const recorders: Recorder[] = [];

afterEach(async () => {
  for (const r of recorders.splice(0)) r.close();
  for (const s of servers.splice(0)) await s.close();
  await conn?.close();
  await sim?.close();
  await redis?.stop();
  conn = sim = redis = undefined;
});

async function setup(extra: Record<string, string> = {}): Promise<{ redis: RedisServer; sim: Simulator; start: () => Promise<PollcastServer> }> {
  redis = await startRedis();
  sim = await createSimulator({});
  const env = { ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: sim.url, REDIS_URL: redis.url, ...extra };
  return {
    redis,
    sim,
    start: async () => {
      const s = await startPollcast(loadConfig(env), { log: silentLogger(), processMetrics: false });
      servers.push(s);
      return s;
    },
  };
}

const RUNNING = JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status: 'running' }, upstreamError: null, synced: true });
const COMPLETED = JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status: 'completed', finished_at: '2026-01-01T00:00:00Z' }, upstreamError: null, synced: true });

/** The test takes a session's lease itself and returns a writer of its log through the fenced append script. */
/**
 * The id of pollcast's reader connection once it has sent an XREAD. Polled: the subscriber can have its first
 * status before the reader has any cursor to read from (the follower still catching up by itself), and then the
 * connection's last command is not yet XREAD (seen once in CI: "expected undefined to be defined").
 */
async function blockedReaderId(): Promise<string> {
  let id: string | undefined;
  await eventually(async () => {
    id = /^id=(\d+) .*cmd=xread/m.exec(String(await redis!.command('CLIENT', 'LIST')))?.[1];
    return id !== undefined;
  }, 5000, 'the reader\'s blocked XREAD in CLIENT LIST');
  return id!;
}

async function leadLog(sessionId: string, includeEvents = true) {
  conn = connectRedis({ url: redis!.url, log: silentLogger(), stats: new Stats() });
  await eventually(() => conn!.state === 'ok', 5000, 'redis');
  const k = logKeys('pollcast:', sessionId, includeEvents);
  const [, , token] = await conn.run<any[]>('acquire', ACQUIRE, [k.lease, k.meta], ['test', '600000', '600000', '', 'born-1']);
  const append = (from: number, evs: string[], opts: { state?: string; end?: string; resetTo?: string } = {}) =>
    conn!.run<any[]>('append', APPEND, [k.lease, k.meta, k.log], [`${token}:test`, String(token), opts.resetTo ?? '', String(from), '1000', '600000', opts.state ?? '', opts.end ?? '', '1', ...evs]);
  /**
   * Replaces the log, at one instant, by a new one (identity `born`) that holds events 0..evs.length-1 and `state`
   * after them: as a Redis that lost the log leaves it once a leader whose feed was behind wrote its first page.
   */
  const replace = async (born: string, evs: string[], state: string) => {
    const next = { meta: `${k.meta}:next`, log: `${k.log}:next` };
    await redis!.command('HSET', next.meta, 'born', born);
    const written = await conn!.run<any[]>('append', APPEND, [k.lease, next.meta, next.log], [`${token}:test`, String(token), '0', '0', '1000', '600000', state, '', '1', ...evs]);
    expect(written).toEqual(['ok', evs.length]);
    await redis!.command('EVAL', "redis.call('RENAME', KEYS[1], KEYS[2]); redis.call('RENAME', KEYS[3], KEYS[4]); return 1", '4', next.meta, k.meta, next.log, k.log);
  };
  return { keys: k, append, replace };
}

describe('gaps in the shared log', () => {
  it('a live session whose events were trimmed out of the log (only statuses left): another instance reads them from upstream as history', async () => {
    const { sim, start } = await setup();
    sim.createSession('t3', { initialEvents: 60 });
    const events = sim.events('t3').map((e) => JSON.stringify(e));
    const { keys, append } = await leadLog('t3');
    expect(await append(0, events, { state: RUNNING, resetTo: '0' })).toEqual(['ok', 60]);
    // Trimmed (status entries pushed the events out): the log's head stays at 60, with only a status left.
    await redis!.command('XTRIM', keys.log, 'MAXLEN', '1');
    const waiting = JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status: 'waiting' }, upstreamError: null, synced: true });
    expect(await append(60, [], { state: waiting })).toEqual(['ok', 60]);
    const b = await start();
    const res = await fetch(`${b.url}/sessions/t3/changes?from_index=0&wait_for_seconds=0`, { signal: AbortSignal.timeout(15_000) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { new_events: unknown[] };
    expect(body.new_events.length).toBeGreaterThan(0);
    const sub = record(`${b.url}/sessions/t3/events`);
    recorders.push(sub);
    await sub.until((x) => x.indices().length === 60, 15_000);
    expect(sub.indices()).toEqual(range(60));
    // Its copy, empty and read by nobody yet, moved on to the log's head: the readers read the events as history (the
    // hub's shared pages), not as a gap the copy fills before any reader may go on (a cluster audit, 7 Dec 2026).
    expect(b.metrics.stats.gapFills.upstream).toBeUndefined();
    expect(b.metrics.stats.replayFromUpstream).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('an overview stream in cluster mode reads no history, and ends with the last index', async () => {
    const { sim, start } = await setup();
    sim.createSession('o2', { initialEvents: 300 });
    const server = await start();
    const ov = recordMany(`${server.url}/events?sessions=o2&mode=overview`, ['o2']);
    recorders.push({ close: () => ov.close() } as Recorder);
    await eventually(() => ov.frames.some((f) => f.type === 'status' && f.data.status === 'running'), 15_000, 'the overview status');
    // The leader started its loop at the session's head: one new event, then the end without another.
    sim.appendEvents('o2', 1);
    await eventually(() => server.metrics.stats.gapFills.upstream !== undefined || sim!.stats('o2').changes > 1, 10_000, 'the new event read');
    sim.finish('o2');
    await ov.allEnded(15_000);
    expect(ov.frames.find((f) => f.type === 'end')!.data.last_index).toBe(300);
    expect(server.metrics.stats.gapFills.upstream ?? 0).toBe(0);
  }, 30_000);

  it('a log replaced by one that starts further on: the reader fills the missing indices from upstream, then goes on from the log', async () => {
    const { sim, start } = await setup();
    sim.createSession('g1', { initialEvents: 40 });
    const events = sim.events('g1').map((e) => JSON.stringify(e));
    conn = connectRedis({ url: redis!.url, log: silentLogger(), stats: new Stats() });
    await eventually(() => conn!.state === 'ok', 5000, 'redis');
    const k = logKeys('pollcast:', 'g1', true);
    const lease = CLUSTER_ENV.REDIS_LEASE_SECONDS!;
    // The test leads: pollcast only follows (its keeper finds the lease held).
    const take = () => conn!.run<any[]>('acquire', ACQUIRE, [k.lease, k.meta], ['test', String(Number(lease) * 10_000), '600000', '', 'born-1']);
    const [, , token] = await take();
    const running = JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status: 'running' }, upstreamError: null, synced: true });
    const append = (from: number, evs: string[], opts: { state?: string; end?: string; resetTo?: string } = {}) =>
      conn!.run<any[]>('append', APPEND, [k.lease, k.meta, k.log], [`${token}:test`, String(token), opts.resetTo ?? '', String(from), '1000', '600000', opts.state ?? '', opts.end ?? '', '1', ...evs]);
    expect(await append(0, events.slice(0, 10), { state: running, resetTo: '0' })).toEqual(['ok', 10]);

    const server = await start();
    const sub = record(`${server.url}/sessions/g1/events`);
    recorders.push(sub);
    await sub.until((x) => x.indices().length === 10);
    // Redis loses the log (a restart without persistence); a new leader whose own feed was further on writes from 30.
    await redis!.command('DEL', k.log, k.meta);
    await take().catch(() => {});
    await redis!.command('SET', k.lease, `${token}:test`);
    expect(await append(30, events.slice(30, 40), { state: running, resetTo: '30' })).toEqual(['ok', 40]);
    const completed = JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status: 'completed', finished_at: '2026-01-01T00:00:00Z' }, upstreamError: null, synced: true });
    expect(await append(40, [], { state: completed, end: 'over' })).toEqual(['ok', 40]);
    const end = await sub.ended(20_000);
    expect(sub.indices()).toEqual(range(40));
    expect(end.last_index).toBe(39);
    expect(end.status).toBe('completed');
    // Indices 10..29 came from upstream (one page), nothing was read twice.
    expect(server.metrics.stats.gapFills).toEqual({ upstream: 20 });
    expect(sim.stats('g1').changes).toBe(1);
  }, 30_000);

  it('a subscriber waiting on an empty feed when the log turns out to start further on: the indices between come from upstream, not skipped', async () => {
    const { sim, start } = await setup();
    sim.createSession('g3', { initialEvents: 45 });
    const events = sim.events('g3').map((e) => JSON.stringify(e));
    conn = connectRedis({ url: redis!.url, log: silentLogger(), stats: new Stats() });
    await eventually(() => conn!.state === 'ok', 5000, 'redis');
    const k = logKeys('pollcast:', 'g3', true);
    const [, , token] = await conn.run<any[]>('acquire', ACQUIRE, [k.lease, k.meta], ['test', '600000', '600000', '', 'born-1']);
    const running = JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status: 'running' }, upstreamError: null, synced: true });
    const append = (from: number, evs: string[], opts: { state?: string; end?: string; resetTo?: string } = {}) =>
      conn!.run<any[]>('append', APPEND, [k.lease, k.meta, k.log], [`${token}:test`, String(token), opts.resetTo ?? '', String(from), '1000', '600000', opts.state ?? '', opts.end ?? '', '1', ...evs]);
    // The log knows the session but holds no event yet: the subscriber's feed (at 14) stays empty, with it waiting.
    expect(await append(0, [], { state: running, resetTo: '0' })).toEqual(['ok', 0]);
    const server = await start();
    const sub = record(`${server.url}/sessions/g3/events`, { headers: { 'Last-Event-ID': '14' } });
    recorders.push(sub);
    await sub.until((x) => x.statuses().length > 0);
    // A leader whose own feed was at 41 writes from there.
    expect(await append(41, events.slice(41, 45), { resetTo: '41' })).toEqual(['ok', 45]);
    const completed = JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status: 'completed' }, upstreamError: null, synced: true });
    await append(45, [], { state: completed, end: 'over' });
    expect((await sub.ended(20_000)).last_index).toBe(44);
    expect(sub.indices()).toEqual(range(30, 15));
    expect(server.metrics.stats.gapFills.upstream).toBeGreaterThanOrEqual(26);
  }, 30_000);

  it('a trimmed log: an instance that never saw the session replays the trimmed start from upstream and the rest from Redis', async () => {
    const { sim, start } = await setup({ REDIS_LOG_MAX_ENTRIES: '100' });
    sim.createSession('g2', { initialEvents: 400, finished: true, detailBytes: 50 });
    const a = await start();
    const first = record(`${a.url}/sessions/g2/events`);
    recorders.push(first);
    await first.ended(20_000);
    expect(first.indices()).toEqual(range(400));
    const kept = (await redis!.command('XLEN', logKeys('pollcast:', 'g2', true).log)) as number;
    expect(kept).toBeLessThan(400);
    const changesBefore = sim.stats('g2').changes;
    const b = await start();
    const late = record(`${b.url}/sessions/g2/events`);
    recorders.push(late);
    expect((await late.ended(20_000)).last_index).toBe(399);
    expect(late.indices()).toEqual(range(400));
    // Only the trimmed part was read again, a page at a time.
    const pages = sim.stats('g2').changes - changesBefore;
    expect(pages).toBeGreaterThan(0);
    expect(pages).toBeLessThanOrEqual(Math.ceil((400 - kept) / 100) + 1);
    // Filled into B's copy (gap fill) or replayed to the subscriber: from upstream either way.
    expect((b.metrics.stats.gapFills.upstream ?? 0) + b.metrics.stats.replayFromUpstream).toBeGreaterThan(0);
  }, 30_000);
});

describe('status entries', () => {
  it('a /status refresh that changes nothing a reader sees writes no log entry', async () => {
    const { sim, start } = await setup();
    sim.createSession('s4', { initialEvents: 2 });
    const server = await start();
    const sub = record(`${server.url}/sessions/s4/events`);
    recorders.push(sub);
    await sub.until((x) => x.indices().length === 2 && x.statuses().some((s) => s.status === 'running'));
    const k = logKeys('pollcast:', 's4', true);
    await eventually(async () => (await redis!.command('XLEN', k.log)) as number >= 3, 5000, 'the first entries');
    await new Promise((r) => setTimeout(r, 500));
    const entriesBefore = (await redis!.command('XLEN', k.log)) as number;
    const statusCalls = sim.stats('s4').status;
    // Three drop-in /status polls, each past the freshness window: each refreshes the status upstream.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 2200));
      expect((await fetch(`${server.url}/sessions/s4/status`, { signal: AbortSignal.timeout(10_000) })).status).toBe(200);
    }
    expect(sim.stats('s4').status).toBeGreaterThanOrEqual(statusCalls + 3);
    expect(await redis!.command('XLEN', k.log)).toBe(entriesBefore);
  }, 30_000);

  it('a reader that reads the log again (its connection lost) does not show the statuses it showed before once more', async () => {
    const { sim, start } = await setup();
    sim.createSession('s5', { initialEvents: 3 });
    const events = sim.events('s5').map((e) => JSON.stringify(e));
    const { append } = await leadLog('s5');
    const costing = (status: string, cost: number) =>
      JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status, metrics: { ...UNKNOWN_SNAPSHOT.metrics, total_cost: cost } }, upstreamError: null, synced: true });
    expect(await append(0, events, { state: costing('running', 1), resetTo: '0' })).toEqual(['ok', 3]);
    const server = await start();
    const sub = record(`${server.url}/sessions/s5/events`);
    recorders.push(sub);
    await sub.until((x) => x.indices().length === 3 && x.statuses().some((st) => st.metrics?.total_cost === 1));
    // Two status changes with no event between them: both stand at the log's head (3-2, 3-3; the first status took 3-1).
    expect(await append(3, [], { state: costing('paused', 2) })).toEqual(['ok', 3]);
    expect(await append(3, [], { state: costing('running', 3) })).toEqual(['ok', 3]);
    await sub.until((x) => x.statuses().some((st) => st.metrics?.total_cost === 3));
    const shown = sub.statuses().length;
    // Every connection of pollcast's dropped: its reader reconnects and reads the log again from the head.
    await redis!.command('CLIENT', 'KILL', 'TYPE', 'normal');
    // (The test's own connection too: it writes once it is back. Before or after the reader's catch-up, the same holds.)
    await eventually(async () => (await append(3, [], { state: costing('idle', 4) }).catch(() => null))?.[0] === 'ok', 5000, 'a status written after the kill');
    await sub.until((x) => x.statuses().some((st) => st.metrics?.total_cost === 4), 10_000);
    const costs = sub.statuses().slice(shown).map((st) => st.metrics?.total_cost);
    expect(costs).toEqual([4]);
  }, 30_000);
});

describe('a log behind the copy', () => {
  const costing = (status: string, cost: number, upstreamError: string | null = null) =>
    JSON.stringify({ snapshot: { ...UNKNOWN_SNAPSHOT, status, metrics: { ...UNKNOWN_SNAPSHOT.metrics, total_cost: cost } }, upstreamError, synced: true });
  const FAULT = 'upstream unavailable: HTTP 503';
  const lastStatus = (r: Recorder) => r.statuses().at(-1);

  /**
   * A reader whose copy holds 10 events (cost 1, an upstream error shown), then its log replaced by one 5 events
   * long whose leader wrote cost 2 and no error: once the reader read the new log (its lease attempt sees another
   * log), the copy is ahead of it.
   */
  async function aheadOfTheLog(id: string) {
    const { sim, start } = await setup();
    sim.createSession(id, { initialEvents: 10 });
    const events = sim.events(id).map((e) => JSON.stringify(e));
    const { append, replace } = await leadLog(id);
    expect(await append(0, events, { state: costing('running', 1, FAULT), resetTo: '0' })).toEqual(['ok', 10]);
    const server = await start();
    const sub = record(`${server.url}/sessions/${id}/events`);
    recorders.push(sub);
    await sub.until((x) => x.indices().length === 10 && lastStatus(x)?.upstream_error === FAULT);
    await replace('born-2', events.slice(0, 5), costing('running', 2));
    // The log's status stands at 5, below the copy's 10 events: older than what the copy shows, only its cluster
    // part (no upstream error) is applied, the figures stay the copy's.
    await sub.until((x) => x.statuses().length > 0 && lastStatus(x)?.upstream_error === undefined, 10_000);
    expect(lastStatus(sub)?.metrics?.total_cost).toBe(1);
    return { sub, events, append };
  }

  it('its status is held back while the log is behind, and shown once the log\'s events reach the copy with no status after them', async () => {
    const { sub, events, append } = await aheadOfTheLog('b1');
    // The leader's events catch up with the copy; it writes no status after them (its status has not changed).
    expect(await append(5, events.slice(5))).toEqual(['ok', 10]);
    await sub.until((x) => lastStatus(x)?.metrics?.total_cost === 2, 10_000);
    expect(lastStatus(sub)?.upstream_error).toBeUndefined();
    expect(sub.indices()).toEqual(range(10));
  }, 30_000);

  it('a status the leader writes while its events catch up with the copy arrives: its cluster part at once, the whole of it once they do', async () => {
    const { sub, events, append } = await aheadOfTheLog('b2');
    // A status change before the leader's events reach the copy: written at the log's head (5), below the copy.
    // Only its cluster part (the upstream error it names) is shown while the log is behind.
    const timeout = 'upstream unavailable: changes: timeout';
    expect(await append(5, [], { state: costing('paused', 3, timeout) })).toEqual(['ok', 5]);
    await sub.until((x) => lastStatus(x)?.upstream_error === timeout, 10_000);
    expect(lastStatus(sub)?.metrics?.total_cost).toBe(1);
    expect(lastStatus(sub)?.status).toBe('running');
    expect(await append(5, events.slice(5))).toEqual(['ok', 10]);
    await sub.until((x) => lastStatus(x)?.metrics?.total_cost === 3, 10_000);
    expect(lastStatus(sub)?.status).toBe('paused');
    expect(lastStatus(sub)?.upstream_error).toBe(timeout);
    // The status it replaced (cost 2) was never shown: held back, then superseded.
    expect(sub.statuses().map((st) => st.metrics?.total_cost)).not.toContain(2);
    expect(sub.indices()).toEqual(range(10));
  }, 30_000);

  it('a held-back status is shown when the log\'s events reach the copy while the reader reconnects (read by the catch-up, not live)', async () => {
    const { sub, events, append } = await aheadOfTheLog('b3');
    // The reader's connection drops; the leader's events reach the copy before it is back (it waits tens of ms).
    await redis!.command('CLIENT', 'KILL', 'ID', await blockedReaderId());
    expect(await append(5, events.slice(5))).toEqual(['ok', 10]);
    await sub.until((x) => lastStatus(x)?.metrics?.total_cost === 2, 10_000);
    expect(lastStatus(sub)?.upstream_error).toBeUndefined();
    expect(sub.indices()).toEqual(range(10));
  }, 30_000);
});

describe('a feed made at the session\'s head', () => {
  it('an SSE subscriber resumed on a feed a Durable offset=now read made: after its reader reconnects, the catch-up fills the events it missed, it does not jump to the head', async () => {
    const { sim, start } = await setup();
    sim.createSession('hd', { initialEvents: 5 });
    const { append } = await leadLog('hd');
    expect(await append(0, sim.events('hd').map((e) => JSON.stringify(e)), { state: RUNNING, resetTo: '0' })).toEqual(['ok', 5]);
    const server = await start();
    // The feed is made for a reader of what comes next (no history read): an empty copy at the head.
    expect((await fetch(`${server.url}/v1/stream/sessions/hd?offset=now`)).status).toBe(200);
    expect(server.hub.activeCount).toBe(1);
    const sub = record(`${server.url}/sessions/hd/events?last_event_id=4`);
    recorders.push(sub);
    await sub.until((x) => x.statuses().some((st) => st.status === 'running'), 10_000);
    // The reader's connection drops; events 5..7 are written before it is back, then 8 after.
    await redis!.command('CLIENT', 'KILL', 'ID', await blockedReaderId());
    sim.appendEvents('hd', 3);
    expect(await append(5, sim.events('hd').slice(5).map((e) => JSON.stringify(e)))).toEqual(['ok', 8]);
    await eventually(() => String(sub.indices()) === '5,6,7', 10_000, 'events 5..7 after the reader is back');
    sim.appendEvents('hd', 1);
    expect(await append(8, sim.events('hd').slice(8).map((e) => JSON.stringify(e)))).toEqual(['ok', 9]);
    await sub.until((x) => x.indices().includes(8), 10_000);
    expect(sub.indices()).toEqual([5, 6, 7, 8]);
  }, 30_000);
});

describe('unknown sessions', () => {
  it('a session the upstream does not know leaves nothing in Redis', async () => {
    const { start } = await setup();
    const server = await start();
    for (let i = 0; i < 5; i++) {
      expect((await fetch(`${server.url}/sessions/nope-${i}/events`, { signal: AbortSignal.timeout(15_000) })).status).toBe(404);
      expect((await fetch(`${server.url}/sessions/nope-${i}/status`, { signal: AbortSignal.timeout(15_000) })).status).toBe(404);
    }
    // Whatever a leader held while it asked is let go at once (the lease and its release marker included).
    await eventually(async () => ((await redis!.command('KEYS', 'pollcast:*')) as string[]).length === 0, 5000, `no keys left: ${JSON.stringify(await redis!.command('KEYS', 'pollcast:*'))}`);
  }, 30_000);
});

describe('a copy asked to start past the session\'s end', () => {
  it('moves back to where the log is and applies its end: no gap error, the same answer on every instance', async () => {
    redis = await startRedis();
    sim = await createSimulator({ api: 'real' });
    sim.createSession('past-1', { initialEvents: 3, finished: true });
    const config = loadConfig({ ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', UPSTREAM_URL: sim.url, REDIS_URL: redis.url });
    const logs = [captureLog('debug'), captureLog('debug')];
    for (const l of logs) servers.push(await startPollcast(config, { log: l.log, processMetrics: false }));
    const [a, b] = servers as [PollcastServer, PollcastServer];
    // Seen: the first contact, made here past the end, left this copy at 0 while the log's end said 99999 ("gap").
    for (const base of [b.url, a.url, b.url]) {
      const res = await fetch(`${base}/api/v2/sessions/past-1/changes?from_index=100000&wait_for_seconds=1`);
      expect(res.status, base).toBe(204);
    }
    const all = await fetch(`${b.url}/api/v2/sessions/past-1/changes?from_index=0&wait_for_seconds=1`);
    expect(all.status).toBe(200);
    expect(((await all.json()) as { new_events: unknown[] }).new_events).toHaveLength(3);
    for (const l of logs) expect(l.lines().filter((line) => line.level >= 50).map((line) => line.msg)).toEqual([]);
  });
});
