/**
 * A loop passes one signal to call after call: the upstream client keeps one
 * abort listener per signal (not one added and removed per call, EventTarget
 * work on every event's path: bench/RESULTS.md, issue 21, thirty-third
 * round), and aborting that signal still abandons the call in flight, and
 * only the calls made with it.
 */
import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createUpstreamClient, type UpstreamClient } from '../../src/upstream/client.ts';

let sim: Simulator | undefined;
let client: UpstreamClient | undefined;
afterEach(async () => {
  await client?.close();
  await sim?.close();
});

const query = (fromIndex: number, waitSeconds: number) => ({ fromIndex, limit: 100, includeEvents: true, waitSeconds });

describe('the upstream client and its callers\' signals', () => {
  it('keeps one abort listener per signal over many calls, and still cuts the call in flight on abort', async () => {
    sim = await createSimulator({});
    sim.createSession('s1');
    client = createUpstreamClient({ baseUrl: sim.url });
    const loop = new AbortController();
    const adds = vi.spyOn(loop.signal, 'addEventListener');
    const removes = vi.spyOn(loop.signal, 'removeEventListener');
    for (let i = 0; i < 20; i++) {
      sim.appendEvents('s1', 1);
      const r = await client.changes('s1', query(i, 5), loop.signal);
      expect(r.kind).toBe('events');
    }
    expect(adds).toHaveBeenCalledTimes(1);
    expect(removes).not.toHaveBeenCalled();
    expect(getEventListeners(loop.signal, 'abort')).toHaveLength(1);

    // A second caller's long-poll, on a signal of its own, goes on when the first signal aborts.
    const other = new AbortController();
    const started = performance.now();
    const cut = client.changes('s1', query(20, 10), loop.signal);
    const kept = client.changes('s1', query(20, 10), other.signal);
    await new Promise((resolve) => setTimeout(resolve, 200));
    loop.abort();
    expect((await cut).kind).toBe('aborted');
    expect(performance.now() - started).toBeLessThan(5_000);
    sim.appendEvents('s1', 1);
    const answer = await kept;
    expect(answer.kind).toBe('events');
    expect(answer.kind === 'events' && answer.changes.new_events).toHaveLength(1);
    expect(getEventListeners(other.signal, 'abort')).toHaveLength(1);
  }, 20_000);
});
