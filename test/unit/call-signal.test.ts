/**
 * A loop passes one signal to call after call: the upstream client keeps one
 * abort listener for such a lasting signal (not one added and removed per
 * call, EventTarget work on every event's path: bench/RESULTS.md, issue 21,
 * thirty-third round), and any other signal gets its listener per call and
 * none after (Node keeps a timeout or `AbortSignal.any` signal with a
 * listener alive until it fires). Aborting still cuts what is in flight: a
 * call, a loop's long-poll when `/status` finds the end, a loop stopped.
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createUpstreamClient, lastingSignal, type UpstreamClient } from '../../src/upstream/client.ts';
import { Poller } from '../../src/upstream/poller.ts';
import type { LoopUpdate } from '../../src/upstream/sink.ts';
import { silentLogger } from '../../src/log.ts';
import { memorySink } from '../helpers/loop-sink.ts';

let sim: Simulator | undefined;
let client: UpstreamClient | undefined;
afterEach(async () => {
  await client?.close();
  await sim?.close();
});

const query = (fromIndex: number, waitSeconds: number) => ({ fromIndex, limit: 100, includeEvents: true, waitSeconds });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A loop on session `s1` with a sink of its own (no hub); its updates, kept. */
function loopOn(signal: AbortSignal): { poller: Poller; updates: LoopUpdate[] } {
  const { sink, updates } = memorySink('s1');
  const poller = new Poller({ client: client!, sink, waitSeconds: 8, pageSize: 100, maxBodyBytes: 1 << 24, backoff: { baseMs: 100, maxMs: 500 }, giveUpMs: 60_000, statusFreshMs: 0, log: silentLogger() } as ConstructorParameters<typeof Poller>[0], signal);
  return { poller, updates };
}

describe('the upstream client and its callers\' signals', () => {
  it('keeps one abort listener for a lasting signal over many calls, and still cuts the call in flight on abort', async () => {
    sim = await createSimulator({});
    sim.createSession('s1');
    client = createUpstreamClient({ baseUrl: sim.url });
    const loop = new AbortController();
    const adds = vi.spyOn(loop.signal, 'addEventListener');
    const signal = lastingSignal(loop);
    for (let i = 0; i < 20; i++) {
      sim.appendEvents('s1', 1);
      expect((await client.changes('s1', query(i, 5), signal)).kind).toBe('events');
    }
    expect(adds).toHaveBeenCalledTimes(1);

    // A second caller's long-poll, on a signal of its own, goes on when the first signal aborts.
    const other = new AbortController();
    const started = performance.now();
    const cut = client.changes('s1', query(20, 10), signal);
    const kept = client.changes('s1', query(20, 10), other.signal);
    await sleep(200);
    loop.abort();
    expect((await cut).kind).toBe('aborted');
    expect(performance.now() - started).toBeLessThan(5_000);
    sim.appendEvents('s1', 1);
    const answer = await kept;
    expect(answer.kind === 'events' && answer.changes.new_events).toHaveLength(1);
  }, 20_000);

  it('leaves no listener on any other signal once its call is over (a timeout signal is not kept alive)', async () => {
    sim = await createSimulator({});
    sim.createSession('s1');
    client = createUpstreamClient({ baseUrl: sim.url });
    const timeout = AbortSignal.timeout(600_000);
    const plain = new AbortController().signal;
    for (const signal of [timeout, plain, AbortSignal.any([plain])]) {
      expect((await client.status('s1', signal)).kind).toBe('state');
      expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    }
  }, 20_000);
});

describe('a loop\'s calls', () => {
  it('add no listener per call to the loop\'s signal, and a long-poll is cut when /status finds the end', async () => {
    sim = await createSimulator({ api: 'real' });
    sim.createSession('s1');
    sim.appendEvents('s1', 2);
    client = createUpstreamClient({ baseUrl: sim.url });
    const stop = new AbortController();
    const adds = vi.spyOn(stop.signal, 'addEventListener');
    const { poller, updates } = loopOn(stop.signal);
    const run = poller.run();
    for (let i = 0; i < 10; i++) {
      await sleep(100);
      sim.appendEvents('s1', 1);
    }
    await sleep(1_500); // in a long-poll, caught up
    expect(adds.mock.calls.length).toBeLessThanOrEqual(2);
    sim.finish('s1');
    const started = performance.now();
    await poller.refreshStatus(true);
    await run;
    expect(performance.now() - started).toBeLessThan(4_000);
    expect(updates.at(-1)?.end).toBe('over');
    expect(updates.reduce((n, u) => n + u.events.length, 0)).toBe(12);
  }, 30_000);

  for (const how of ['its own signal', 'an AbortSignal.any of it'] as const) {
    it(`stops at once mid long-poll when ${how} aborts`, async () => {
      sim = await createSimulator({ api: 'real' });
      sim.createSession('s1');
      sim.appendEvents('s1', 2);
      client = createUpstreamClient({ baseUrl: sim.url });
      const term = new AbortController();
      const paused = new AbortController();
      const { poller } = loopOn(how === 'its own signal' ? term.signal : AbortSignal.any([term.signal, paused.signal]));
      const run = poller.run();
      await sleep(1_500);
      const started = performance.now();
      (how === 'its own signal' ? term : paused).abort();
      await run;
      expect(performance.now() - started).toBeLessThan(1_000);
    }, 30_000);
  }
});
