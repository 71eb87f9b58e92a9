/**
 * The first `status` of a stream in cluster mode is the whole snapshot
 * (started_at, finished_at, metrics), as in one process: the leader's first
 * `/status` answer goes into the log with the first changes answer, not
 * alone before it (other instances open their streams on the log's first word).
 */
import { describe, expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { record } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();

describe('the first status in cluster mode', () => {
  it('carries started_at, finished_at and metrics on every instance, for a finished session and a live one, resumed or from the start', async () => {
    parts.redis = await startRedis();
    parts.sim = await createSimulator({});
    const start = serverStarter(parts);
    const [a, b] = [await start(), await start()];
    parts.sim.createSession('fs-done', { initialEvents: 6, finished: true });
    parts.sim.createSession('fs-live', { initialEvents: 4 });
    const cases: Array<[string, string]> = [
      [`${b.url}/sessions/fs-done/events?from_index=3`, 'fs-done'],
      [`${a.url}/sessions/fs-live/events`, 'fs-live'],
      [`${b.url}/sessions/fs-live/events?from_index=2`, 'fs-live'],
    ];
    for (const [url, id] of cases) {
      const r = record(url);
      parts.recorders.push(r);
      await r.until((rec) => rec.statuses().length >= 1, 10_000);
      const first = r.statuses()[0] as { status: string; started_at: string | null; finished_at: string | null; metrics: Record<string, unknown> };
      expect(first.started_at, `${id}: ${JSON.stringify(first)}`).not.toBeNull();
      expect(Object.keys(first.metrics ?? {}), `${id}: ${JSON.stringify(first)}`).not.toEqual([]);
      if (id === 'fs-done') expect(first.finished_at).not.toBeNull();
    }
  });
});
