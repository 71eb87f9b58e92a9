/**
 * Issue 4, part 3: churn. Thousands of subscribers connect and leave — clean
 * closes, abrupt destroys, TCP resets, clients that vanish before the answer,
 * real EventSources — while long-lived subscribers must see every event
 * exactly once. Afterwards nothing is left behind: no stream, no feed
 * listener, no socket or timer, no heap growth.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EventSource } from 'eventsource';
import { eventually, range, record, startBridge, type Bridge } from '../helpers/harness.ts';
import { mulberry32, type Rng } from '../../src/simulator/prng.ts';
import { activeResources, memoryAfterGc, mib, ONE_ADDRESS_ENV, pause } from './helpers.ts';

/** Subscribers in all (CHURN_SUBSCRIBERS overrides, for a bigger run by hand), and how many are in flight at once. */
const TOTAL = Number(process.env.CHURN_SUBSCRIBERS ?? 2000);
const BATCH = 200;
const SEED = 20_251_125;

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

type Leave = 'clean' | 'destroy' | 'reset' | 'early' | 'eventsource';

/** One short-lived subscriber over a raw socket: waits for the stream to start (status frame), lingers a little, then leaves as told. */
function churnOne(url: string, path: string, headers: Record<string, string>, leave: Leave, lingerMs: number): Promise<void> {
  if (leave === 'eventsource') {
    return new Promise((resolve, reject) => {
      const es = new EventSource(`${url}${path}`, { fetch: (input, init) => fetch(input, { ...init, headers: { ...headers, ...(init?.headers as Record<string, string>) } }) });
      const timer = setTimeout(() => {
        es.close();
        reject(new Error('eventsource churner: no status within 10 s'));
      }, 10_000);
      es.addEventListener('error', () => {
        if (es.readyState !== es.CLOSED) return;
        clearTimeout(timer);
        reject(new Error('eventsource churner: refused'));
      });
      es.addEventListener('status', () => {
        clearTimeout(timer);
        setTimeout(() => {
          es.close();
          resolve();
        }, lingerMs);
      });
    });
  }
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const socket = connect({ host: u.hostname, port: Number(u.port) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${leave} churner: stuck for 10 s`));
    }, 10_000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.on('error', () => {});
    const head = [`GET ${path} HTTP/1.1`, `Host: ${u.host}`, 'Accept: text/event-stream', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
    socket.write(head);
    if (leave === 'early') {
      // Gone before the answer: the route, the hub's acquire or the replay sees a dead socket.
      setTimeout(() => socket.destroy(), lingerMs % 3);
      return;
    }
    let seen = '';
    let leaving = false;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      if (leaving) return;
      seen += d;
      if (seen.length >= 12 && !seen.startsWith('HTTP/1.1 200')) {
        leaving = true;
        socket.destroy();
        clearTimeout(timer);
        reject(new Error(`${leave} churner refused: ${seen.split('\r\n')[0]}`));
        return;
      }
      if (!seen.includes('event: status')) return;
      leaving = true;
      setTimeout(() => {
        if (leave === 'clean') socket.end();
        else if (leave === 'destroy') socket.destroy();
        else socket.resetAndDestroy();
      }, lingerMs);
    });
  });
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

/** Counts of the resource types that subscribers could leak. */
function leakables(): { sockets: number; timers: number; all: number } {
  const r = activeResources();
  return { sockets: r.TCPSocketWrap ?? 0, timers: r.Timeout ?? 0, all: Object.values(r).reduce((a, b) => a + b, 0) };
}

/** The most timers seen over half a second. */
async function steadyTimers(): Promise<number> {
  let most = 0;
  for (let i = 0; i < 10; i++) {
    most = Math.max(most, leakables().timers);
    await pause(50);
  }
  return most;
}

describe('subscriber churn', () => {
  it(`${TOTAL} subscribers come and go (clean, destroy, reset, early, EventSource): nothing lost for the steady ones, nothing left behind`, async () => {
    const b = (bridge = await startBridge({ ...ONE_ADDRESS_ENV, IDLE_GRACE_SECONDS: '0.2', HEARTBEAT_SECONDS: '1', UPSTREAM_WAIT_SECONDS: '5' }));
    const rng = mulberry32(SEED);
    const live = ['churn-live-1', 'churn-live-2', 'churn-live-3'];
    for (const id of live) b.sim.createSession(id, { initialEvents: 20, emitEveryMs: 150 });
    b.sim.createSession('churn-done', { initialEvents: 60, finished: true });
    const sessions = [...live, 'churn-done'];

    const base0 = { res: leakables(), mem: memoryAfterGc() };
    // Steady subscribers: one per live session, for the whole run.
    const steady = live.map((id) => record(`${b.url}/sessions/${id}/events`));
    await Promise.all(steady.map((r) => r.until((x) => x.indices().length >= 20)));
    await eventually(() => b.server.hub.activeCount === 3, 5000, 'three loops');
    const kinds: Leave[] = ['clean', 'destroy', 'reset', 'early', 'eventsource'];
    const byKind: Record<string, number> = {};
    const churner = () => {
      const id = pick(rng, sessions);
      // Mostly raw sockets (cheap); one in ten a real EventSource.
      const leave: Leave = rng() < 0.1 ? 'eventsource' : pick(rng, kinds.slice(0, 4));
      byKind[leave] = (byKind[leave] ?? 0) + 1;
      const start = Math.floor(rng() * 25);
      const headers: Record<string, string> = rng() < 0.5 ? { 'Last-Event-ID': String(start) } : {};
      const path = `/sessions/${id}/events${rng() < 0.5 ? `?from_index=${start}` : ''}`;
      return churnOne(b.url, path, headers, leave, Math.floor(rng() * 40));
    };
    // Warm up every code path with one batch first, so what is created once (compiled code, pools) does not count as growth.
    await Promise.all(range(BATCH).map(churner));
    await eventually(() => b.server.streams.size === steady.length, 5000, 'warm-up streams to close');
    for (const k of Object.keys(byKind)) delete byKind[k];
    const base1 = { res: leakables(), mem: memoryAfterGc() };
    // The live loops' and sweeps' timers come and go from one moment to the next (one CI run read 3 fewer here than
    // after the churn); the baseline is the most seen over half a second, while a leaked timer would stay.
    const baseTimers1 = await steadyTimers();

    const started = performance.now();
    let peakStreams = 0;
    const sampler = setInterval(() => (peakStreams = Math.max(peakStreams, b.server.streams.size)), 2);
    try {
      for (let done = 0; done < TOTAL; done += BATCH) await Promise.all(range(Math.min(BATCH, TOTAL - done)).map(churner));
    } finally {
      clearInterval(sampler);
    }
    const churnMs = performance.now() - started;

    // Every churner is gone: only the steady streams remain, each the only listener of its feed.
    await eventually(() => b.server.streams.size === steady.length, 10_000, `streams back to ${steady.length} (now ${b.server.streams.size})`);
    for (const id of sessions) {
      const entry = await b.server.hub.acquire(id, true);
      expect(entry.feed.listeners.size, `listeners of ${id}`).toBe(id === 'churn-done' ? 0 : 1);
      b.server.hub.release(entry);
    }
    expect(b.server.metrics.stats.streamsOpened).toBeGreaterThanOrEqual(TOTAL - (byKind.early ?? 0) + steady.length);
    await eventually(() => leakables().sockets <= base1.res.sockets + 2, 10_000, 'client and server sockets to close');
    const after1 = { res: leakables(), mem: memoryAfterGc(), streams: b.server.streams.size };

    // The steady subscribers saw every event exactly once, in order, through all of it.
    for (const id of live) b.sim.finish(id);
    await Promise.all(steady.map((r) => r.ended(15_000)));
    live.forEach((id, k) => expect(steady[k]!.indices()).toEqual(range(b.sim.eventCount(id))));

    // Then everything winds down to where it started.
    await eventually(() => b.server.streams.size === 0 && b.server.hub.activeCount === 0, 10_000, 'streams and loops to stop');
    await eventually(() => leakables().sockets <= base0.res.sockets + 3, 10_000, 'sockets back to the baseline');
    const after0 = { res: leakables(), mem: memoryAfterGc() };

    // With the steady subscribers on: the same sockets and timers as before the churn, give or take a pooled upstream connection.
    expect(after1.res.sockets).toBeLessThanOrEqual(base1.res.sockets + 2);
    expect(after1.res.timers).toBeLessThanOrEqual(baseTimers1 + 2);
    expect(after0.res.timers).toBeLessThanOrEqual(base0.res.timers + 2);
    // Heap after GC back near the baseline: leaked subscribers would hold several KiB each (a ServerResponse, its socket, a subscriber).
    const heapGrowth = after1.mem.heapUsed - base1.mem.heapUsed;
    expect(heapGrowth).toBeLessThan(3 << 20);
    console.log(
      `[churn] ${TOTAL} subscribers in batches of ${BATCH} (${Object.entries(byKind).map(([k, n]) => `${k} ${n}`).join(', ')}) in ${Math.round(churnMs)} ms, ` +
        `up to ${peakStreams} streams open at once; seed ${SEED}\n` +
        `[churn] with 3 steady streams — before: heap ${mib(base1.mem.heapUsed)} MiB, sockets ${base1.res.sockets}, timers ${base1.res.timers}, handles ${base1.res.all}; ` +
        `after: heap ${mib(after1.mem.heapUsed)} MiB (${heapGrowth >= 0 ? '+' : ''}${mib(heapGrowth)}), sockets ${after1.res.sockets}, timers ${after1.res.timers}, handles ${after1.res.all}; ` +
        `streams ${after1.streams}, feed listeners 1 per live session\n` +
        `[churn] idle (no subscriber, loops stopped) — start: heap ${mib(base0.mem.heapUsed)} MiB, sockets ${base0.res.sockets}, timers ${base0.res.timers}; ` +
        `end: heap ${mib(after0.mem.heapUsed)} MiB, sockets ${after0.res.sockets}, timers ${after0.res.timers}`,
    );
  });
});
