/**
 * What a loop reports of a Retry-After (`onRetryAfter`): the wait it keeps (its own backoff, if longer) and the
 * upstream's own. A later loop of the same feed keeps to the upstream's only (src/transport/memory.ts): a review
 * (7 Dec 2026) found it kept the whole wait, so a `Retry-After: 1` inside a backoff grown to 30 s held the next loop
 * 30 s, with every open answered from the stopped loop's copy meanwhile.
 */
import { afterEach, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { createUpstreamClient, type UpstreamClient } from '../../src/upstream/client.ts';
import { Poller } from '../../src/upstream/poller.ts';
import { silentLogger } from '../../src/log.ts';
import { eventually } from '../helpers/harness.ts';
import { memorySink } from '../helpers/loop-sink.ts';

let sim: Simulator | undefined;
let client: UpstreamClient | undefined;
afterEach(async () => {
  await client?.close();
  await sim?.close();
});

it("reports the wait it keeps and, apart, the upstream's Retry-After inside it", async () => {
  sim = await createSimulator({});
  sim.createSession('s1', { initialEvents: 1 });
  sim.faults.script([{ kind: 'rate-limit', retryAfterSeconds: 1 }], { session: 's1', endpoint: 'changes' });
  client = createUpstreamClient({ baseUrl: sim.url });
  const { sink } = memorySink('s1');
  const reported: Array<[number, number]> = [];
  const loop = new AbortController();
  // A first backoff of 4-8 s: longer than the upstream's 1 s.
  const poller = new Poller(
    { client, sink, waitSeconds: 1, pageSize: 100, maxBodyBytes: 1 << 24, backoff: { baseMs: 8000, maxMs: 8000 }, giveUpMs: 60_000, statusFreshMs: 0, log: silentLogger(), onRetryAfter: (waitMs, retryAfterMs) => reported.push([waitMs, retryAfterMs]) } as ConstructorParameters<typeof Poller>[0],
    loop.signal,
  );
  const running = poller.run();
  try {
    await eventually(() => reported.length > 0, 5000, 'the 429 reported');
  } finally {
    loop.abort();
    await running;
  }
  const [waitMs, retryAfterMs] = reported[0]!;
  expect(waitMs).toBeGreaterThanOrEqual(4000);
  expect(retryAfterMs).toBe(1000);
});
