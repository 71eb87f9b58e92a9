/**
 * An SDK that stops at the terminal status without draining `changes` (the SDK's `polling.ts` as an audit read it,
 * 7 Dec 2026) gets every event through pollcast when the loop's own upstream call hangs near the end: pollcast's
 * drop-in `/status` tells the end once the loop holds the last events, not when `/status`, asked afresh, first says
 * it (the audit's SDK stopped at 6 or 7 of 18 events, 6 runs of 6).
 */
import { afterEach, expect, it } from 'vitest';
import { eventually, startBridge, type Bridge } from '../helpers/harness.ts';
import { waitForSession } from '../helpers/sdk-client.ts';

let bridge: Bridge | undefined;
afterEach(async () => {
  await bridge?.close();
  bridge = undefined;
});

it('a hung upstream call near the end: an SDK that stops at the terminal status still has every event', async () => {
  bridge = await startBridge({}, { api: 'real' });
  const b = bridge;
  for (const [k, hangAtMs] of [900, 1500].entries()) {
    const id = `sdk-hang-${k}`;
    // 2 events, then one every 300 ms, 16 more, then completed.
    b.sim.createSession(id, { initialEvents: 2, imageBytes: 0, emitEveryMs: 300, batchSize: 1, emitCount: 16, finishAfterEmit: true });
    // The loop's next changes call gets no answer (a connection gone silent) while the session goes on and ends.
    const hang = setTimeout(() => b.sim.faults.script([{ kind: 'hang' }], { session: id, endpoint: 'changes' }), hangAtMs);
    try {
      const r = await waitForSession(`${b.url}/api/v2`, id, { waitSeconds: 5, timeoutMs: 40_000, drainAfterSettled: false });
      expect(r.status).toBe('completed');
      expect(b.sim.stats(id).faultsServed).toBe(1);
      expect(r.events.map((e) => e.timestamp)).toEqual(b.sim.events(id).map((e) => e.timestamp));
    } finally {
      clearTimeout(hang);
      b.sim.faults.clear();
    }
  }
}, 90_000);

it('the end is told without waiting for a drain whose calls fail: /status says completed, not running, through an outage of changes', async () => {
  // A review (7 Dec 2026) of the rule above: with every changes call failing, /status said "running" for 30 s.
  bridge = await startBridge({ UPSTREAM_WAIT_SECONDS: '2', STATUS_FRESH_SECONDS: '1' }, { api: 'real' });
  const b = bridge;
  const id = 'sdk-drain-fails';
  b.sim.createSession(id, { initialEvents: 2, imageBytes: 0 });
  const status = async () => ((await (await fetch(`${b.url}/api/v2/sessions/${id}/status`)).json()) as { status: string }).status;
  expect((await fetch(`${b.url}/api/v2/sessions/${id}/changes?from_index=0`)).status).toBe(200);
  expect(await status()).toBe('running');
  b.sim.faults.script(Array.from({ length: 1000 }, () => ({ kind: 'http' as const, status: 500 })), { session: id, endpoint: 'changes' });
  b.sim.finish(id);
  const finishedAt = performance.now();
  await eventually(async () => (await status()) === 'completed', 8000, '/status to say completed');
  // Well within the 10 s a held end may take at most.
  expect(performance.now() - finishedAt).toBeLessThan(8000);
  expect(b.sim.stats(id).faultsServed).toBeGreaterThan(0);
}, 30_000);
