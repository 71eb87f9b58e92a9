/**
 * Cluster mode end to end: three real pollcast processes on one real
 * redis-server and one simulator, real EventSource subscribers spread over
 * them. One loop per session for the whole cluster; every subscriber gets
 * every event exactly once, in order, through a leader's SIGKILL, a
 * reconnect to another instance, and Redis going away and coming back empty.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, range, record, type Recorder } from '../helpers/harness.ts';
import { CLUSTER_LEASE_SECONDS, startCluster, type Cluster } from './helpers.ts';

let cluster: Cluster | undefined;
const recorders: Recorder[] = [];

afterEach(async () => {
  for (const r of recorders.splice(0)) r.close();
  await cluster?.close();
  cluster = undefined;
});

/** `count` subscribers of `session` from index 0, spread over the instances round-robin through the balancer. */
function subscribe(c: Cluster, session: string, count: number): Recorder[] {
  const out: Recorder[] = [];
  for (let i = 0; i < count; i++) {
    const slot = i % c.instances.length;
    const r = record(`${c.urlOf(slot)}/sessions/${session}/events`, { fetch: c.balancer(slot) });
    out.push(r);
    recorders.push(r);
  }
  return out;
}

describe('cluster mode (3 processes, 1 Redis)', () => {
  it('30 subscribers over three instances: one changes call in flight at a time for the session, every event exactly once, in order', async () => {
    cluster = await startCluster(3);
    const { sim } = cluster;
    sim.createSession('c-live', { initialEvents: 5, emitEveryMs: 40, batchSize: 2, emitCount: 120 });
    const subs = subscribe(cluster, 'c-live', 30);
    const ends = await Promise.all(subs.map((r) => r.ended(40_000)));
    const total = sim.eventCount('c-live');
    expect(total).toBe(125);
    for (const r of subs) expect(r.indices()).toEqual(range(total));
    for (const e of ends) expect(e.last_index).toBe(total - 1);
    expect(sim.stats('c-live').maxInFlightChanges).toBe(1);
    // Exactly one instance led (a single term: no takeover).
    let takeovers = 0;
    for (let i = 0; i < 3; i++) takeovers += await cluster.metric(i, 'pollcast_redis_lease_takeovers_total');
    expect(takeovers).toBe(0);
  }, 60_000);

  it('SIGKILL of the leader mid-stream: another instance takes over within the lease, and every subscriber (those of the dead one through another) ends with the exact sequence', async () => {
    cluster = await startCluster(3);
    const c = cluster;
    c.sim.createSession('c-kill', { initialEvents: 3, emitEveryMs: 50, batchSize: 1, emitCount: 240 });
    const subs = subscribe(c, 'c-kill', 30);
    await Promise.all(subs.map((r) => r.until((x) => x.indices().length >= 20, 20_000)));
    let leaders: number[] = [];
    await eventually(async () => (leaders = await c.leaders()).length === 1, 5000, 'one leader');
    const dead = leaders[0]!;
    const survivor = subs.find((_, i) => i % 3 !== dead)!;
    await c.kill(dead);
    const killedAt = performance.now();
    const seenAtKill = c.sim.eventCount('c-kill');
    // The first event the upstream emits after the kill reaches a survivor once the new leader runs.
    await survivor.until((x) => x.indices().length > seenAtKill, 30_000);
    const takeoverMs = performance.now() - killedAt;
    console.log(`[cluster] leader ${dead} killed; a survivor got new events ${Math.round(takeoverMs)} ms later (lease ${CLUSTER_LEASE_SECONDS} s)`);
    expect(takeoverMs).toBeLessThan(CLUSTER_LEASE_SECONDS * 1000 + 3000);
    await Promise.all(subs.map((r) => r.ended(45_000)));
    const total = c.sim.eventCount('c-kill');
    for (const r of subs) expect(r.indices()).toEqual(range(total));
    let takeovers = 0;
    for (let i = 0; i < 3; i++) if (i !== dead) takeovers += await c.metric(i, 'pollcast_redis_lease_takeovers_total');
    expect(takeovers).toBe(1);
  }, 90_000);

  it('a reconnect to another instance replays exactly, live and after the end; a finished session is served from Redis by an instance that never saw it, with no upstream call', async () => {
    cluster = await startCluster(3);
    const c = cluster;
    c.sim.createSession('c-move', { initialEvents: 10, emitEveryMs: 40, batchSize: 1, emitCount: 100 });
    // Live: read on instance 0, leave, come back on instance 1 with Last-Event-ID.
    const first = record(`${c.urlOf(0)}/sessions/c-move/events`);
    recorders.push(first);
    await first.until((x) => x.indices().length >= 25);
    first.close();
    const last = first.indices().at(-1)!;
    const moved = record(`${c.urlOf(1)}/sessions/c-move/events`, { headers: { 'Last-Event-ID': String(last) } });
    recorders.push(moved);
    const end = await moved.ended(30_000);
    const total = c.sim.eventCount('c-move');
    expect(first.indices().concat(moved.indices())).toEqual(range(total));
    expect(end.last_index).toBe(total - 1);
    // After the end, on the third instance (which had no subscriber of this session), from the middle.
    const after = record(`${c.urlOf(2)}/sessions/c-move/events`, { headers: { 'Last-Event-ID': '50' } });
    recorders.push(after);
    expect((await after.ended()).last_index).toBe(total - 1);
    expect(after.indices()).toEqual(range(total - 51, 51));
    // A brand-new instance serves the finished session (events, drop-ins) from Redis alone.
    const before = c.sim.stats('c-move');
    const fresh = await c.add();
    const late = record(`${c.urlOf(fresh)}/sessions/c-move/events`);
    recorders.push(late);
    const lateEnd = await late.ended();
    expect(late.indices()).toEqual(range(total));
    expect(lateEnd).toEqual(end);
    const changes = await fetch(`${c.urlOf(fresh)}/sessions/c-move/changes?from_index=${total - 3}`);
    expect(changes.status).toBe(200);
    const body = (await changes.json()) as { new_events: unknown[]; status: string; finished_at: string | null };
    expect(body.new_events).toHaveLength(3);
    expect(body.status).toBe('completed');
    expect(body.finished_at).not.toBeNull();
    const status = await fetch(`${c.urlOf(fresh)}/sessions/c-move/status`);
    expect(((await status.json()) as { status: string }).status).toBe('completed');
    const afterStats = c.sim.stats('c-move');
    expect(afterStats.changes).toBe(before.changes);
    expect(afterStats.status).toBe(before.status);
  }, 60_000);

  it('redis-server stopped for a few seconds and restarted empty mid-stream: every subscriber still gets the exact sequence', async () => {
    cluster = await startCluster(3);
    const c = cluster;
    c.sim.createSession('c-redis', { initialEvents: 3, emitEveryMs: 50, batchSize: 1, emitCount: 260 });
    const subs = subscribe(c, 'c-redis', 15);
    await Promise.all(subs.map((r) => r.until((x) => x.indices().length >= 20, 20_000)));
    await c.redis.stop();
    await new Promise((r) => setTimeout(r, 3000)); // the outage itself: time must pass
    await c.redis.start();
    await Promise.all(subs.map((r) => r.ended(60_000)));
    const total = c.sim.eventCount('c-redis');
    for (const r of subs) expect(r.indices()).toEqual(range(total));
    let errors = 0;
    for (let i = 0; i < 3; i++) errors += await c.metric(i, 'pollcast_redis_errors_total');
    expect(errors).toBeGreaterThan(0);
  }, 90_000);
});
