/**
 * The first `status` of a stream in cluster mode is the whole snapshot
 * (started_at, finished_at, metrics), as in one process: the leader's first
 * `/status` answer goes into the log with the first changes answer, not
 * alone before it (other instances open their streams on the log's first word).
 */
import { describe, expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { record, startBridge } from '../helpers/harness.ts';
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

  it('is held through a forwarded write that nudges the loop before the first changes answer (the write asks /status again)', async () => {
    const KEY = 'operator-key-nudge-0123';
    parts.redis = await startRedis();
    parts.sim = await createSimulator({ demo: false, api: 'real', apiKey: KEY, maxWaitSeconds: 30 });
    const start = serverStarter(parts, { UPSTREAM_API_KEY: KEY });
    const [leader, other] = [await start(), await start()];
    const path = new URL(parts.sim.url).pathname;
    parts.sim.createSession('fs-nudge', { initialEvents: 2 });
    // A first changes answer that takes 1.5 s; the write lands while it comes.
    parts.sim.faults.script([{ kind: 'slow-body', chunkDelayMs: 300, chunks: 5 }], { session: 'fs-nudge', endpoint: 'changes' });
    const r = record(`${leader.url}/sessions/fs-nudge/events`);
    parts.recorders.push(r);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const write = await fetch(`${other.url}${path}/sessions/fs-nudge/messages`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ message: 'hi' }) });
    expect(write.status).toBe(202);
    await r.until((rec) => rec.statuses().length >= 1, 10_000);
    const first = r.statuses()[0] as { started_at: string | null; metrics: Record<string, unknown> };
    expect(first.started_at, JSON.stringify(first)).not.toBeNull();
    expect(Object.keys(first.metrics ?? {})).not.toEqual([]);
  }, 30_000);
});

describe('the first status in one process', () => {
  it('once streams opened on a failed first /status, the answer that follows goes out at once, not held for the first changes answer', async () => {
    const b = await startBridge({ UPSTREAM_TIMEOUT_MARGIN_SECONDS: '5' });
    try {
      b.sim.createSession('fs-h0', { initialEvents: 6 });
      b.sim.faults.script([{ kind: 'http', status: 503 }], { session: 'fs-h0', endpoint: 'status' });
      // The first changes call hangs (until it is abandoned, 25 + 5 s): only the /status answer can end the outage.
      b.sim.faults.script([{ kind: 'hang' }], { session: 'fs-h0', endpoint: 'changes' });
      const r = record(`${b.url}/sessions/fs-h0/events?from_index=3`);
      await r.until((rec) => rec.statuses().length >= 1, 5000);
      expect((r.statuses()[0] as { upstream_error?: string }).upstream_error).toMatch(/503/);
      // The retried /status (after a backoff of about 200 ms) is shown: the outage is over for the stream and for
      // drop-in /status, long before the hung changes call ends (up to 30 s; held, it would be shown only then).
      await r.until((rec) => rec.statuses().some((st) => (st as { upstream_error?: string | null }).upstream_error == null), 5000);
      const status = await fetch(`${b.url}/sessions/fs-h0/status`);
      expect(status.status).toBe(200);
      r.close();
    } finally {
      await b.close();
    }
  }, 30_000);
});
