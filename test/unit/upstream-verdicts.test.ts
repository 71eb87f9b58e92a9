/**
 * The AUTH=upstream verdict cache against the simulator (a real HTTP
 * upstream): verdicts that ran out leave memory, so a flood of one-off keys
 * (each refused once) does not stay until the LRU bound pushes it out (seen:
 * 19,091 expired entries held by an idle instance after a soak, 6 Dec 2026), also on an instance gone idle.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createUpstreamClient } from '../../src/upstream/client.ts';
import { upstreamCredential } from '../../src/upstream/credential.ts';
import { VerdictCache } from '../../src/http/upstream-verdicts.ts';
import { Stats } from '../../src/metrics.ts';

let sim: Simulator | undefined;
afterEach(async () => {
  await sim?.close();
});

describe('the verdict cache', () => {
  it('drops verdicts that ran out, and still answers a live one from memory', async () => {
    sim = await createSimulator({ api: 'real', apiKeys: { 'good-key-0123456789': 'org' } });
    sim.createSession('v1', { organisation: 'org' });
    const client = createUpstreamClient({ baseUrl: sim.url });
    const stats = new Stats();
    const cache = new VerdictCache({ client, ttlMs: 60_000, stats, purgeIntervalMs: 100 });
    const good = upstreamCredential('authorization', 'Bearer good-key-0123456789');
    expect((await cache.check(good, 'v1')).kind).toBe('accepted');
    for (let i = 0; i < 20; i++) expect((await cache.check(upstreamCredential('authorization', `Bearer junk-${i}`), 'v1')).kind).toBe('refused');
    expect(cache.size).toBe(21);
    // Refusals are kept 5 s (REFUSAL_MAX_MS); then a sweep drops them, with no further check (an idle instance).
    await new Promise((resolve) => setTimeout(resolve, 5300));
    expect(cache.size).toBe(1);
    expect((await cache.check(upstreamCredential('authorization', 'Bearer junk-late'), 'v1')).kind).toBe('refused');
    expect(cache.size).toBe(2);
    const calls = sim.requests().length;
    expect((await cache.check(good, 'v1')).kind).toBe('accepted');
    expect(sim.requests().length).toBe(calls);
    await client.close();
  }, 20_000);
});
