/**
 * A graceful handover near the end of a session with no event read (cluster audit, 7 Dec 2026): the leader heard the
 * end from `/status` and was stopped (SIGTERM) before its drain, behind a changes side lagging `/status` by 2 s. The
 * new leader started from the log's state, which said the end already, took the session for one never seen running,
 * and ended it at once with none of its 2 events, for every subscriber (4 runs of 4). It waits for the end to settle
 * now, as the first leader would have.
 */
import { expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { range, record } from '../helpers/harness.ts';
import { lagProxy } from '../helpers/lag-proxy.ts';
import { startRedis } from '../helpers/redis.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();

it('a new leader after a graceful handover at the end of a session with no event read waits for the end to settle: every event, for every subscriber', async () => {
  parts.redis = await startRedis();
  parts.sim = await createSimulator({ api: 'real', demo: false });
  const sim = parts.sim;
  const proxy = await lagProxy(sim.url, 2000);
  try {
    const start = serverStarter(parts, { UPSTREAM_URL: proxy.url, UPSTREAM_WAIT_SECONDS: '1' });
    const leader = await start();
    const other = await start();
    sim.createSession('zt', { initialEvents: 0, imageBytes: 0 });
    const first = record(`${leader.url}/sessions/zt/events`);
    parts.recorders.push(first);
    await first.until((x) => x.statuses().length > 0, 10_000);
    const second = record(`${other.url}/sessions/zt/events`);
    parts.recorders.push(second);
    await second.until((x) => x.statuses().length > 0, 10_000);
    sim.appendEvents('zt', 2);
    sim.finish('zt', { status: 'completed', answer: 'late but whole', closingEvents: false });
    // The leader hears the end from /status (its long-poll found nothing: the changes side lags), then stops.
    await first.until((x) => x.statuses().some((s) => s.status === 'completed'), 10_000);
    expect(first.indices()).toEqual([]);
    await leader.close();
    const end = await second.ended(20_000);
    expect(second.indices()).toEqual(range(2));
    expect(end).toMatchObject({ status: 'completed', last_index: 1, answer: 'late but whole' });
  } finally {
    proxy.server.closeAllConnections();
    await new Promise<void>((resolve) => proxy.server.close(() => resolve()));
  }
}, 60_000);
