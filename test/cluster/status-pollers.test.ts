/**
 * Drop-in `/status` pollers on an instance that reads nothing else of a
 * session whose loop (with event details) another instance leads: they follow
 * that loop's log, so the cluster still runs one loop for the session, not a
 * second one without details for them.
 */
import { expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { eventually, record } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();

it('/status pollers on another instance follow the leader\'s log: one loop, one long-poll at a time, the status as it changes', async () => {
  parts.redis = await startRedis();
  const sim = (parts.sim = await createSimulator({}));
  sim.createSession('sp', { initialEvents: 2, emitEveryMs: 200, batchSize: 1, emitCount: 200 });
  const start = serverStarter(parts);
  const [a, b] = [await start(), await start()];
  const viewer = record(`${a.url}/sessions/sp/events`);
  parts.recorders.push(viewer);
  await viewer.until((x) => x.indices().length >= 4, 10_000);
  // B has no reader of the session: its pollers alone.
  for (let i = 0; i < 8; i++) {
    const res = await fetch(`${b.url}/sessions/sp/status`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe('running');
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(sim.stats('sp').maxInFlightChanges).toBe(1);
  // One loop: B holds no lease, and its one feed is the one with details (it follows A's log).
  expect(b.metrics.stats.leasesHeld).toBe(0);
  expect(b.hub.activeCount).toBe(1);
  // The end shows on B's pollers: they read the log A's loop writes.
  sim.finish('sp', { status: 'completed', answer: 'done' });
  await eventually(async () => ((await (await fetch(`${b.url}/sessions/sp/status`)).json()) as { status: string }).status === 'completed', 10_000, 'the end seen on B');
  expect(sim.stats('sp').maxInFlightChanges).toBe(1);
}, 60_000);
