/**
 * Drives a scenario's event schedule through the simulator's control API.
 * Sessions are created idle, so every stream is open before the first event;
 * the simulator stamps `emitted_at_ms` when an append lands, so the timing of
 * these calls never enters the latency figures.
 */
import type { SimControl } from './sim-control.ts';
import type { Scenario } from './scenarios.ts';
import { delay } from './processes.ts';

/** Appends in flight at once (keeps the control calls from queueing behind each other). */
const MAX_IN_FLIGHT = 32;

/**
 * Emits `perSession` events to every session: at `eventsPerSecond` single
 * events, session starts spread evenly over one interval (rate), or one
 * append of `perSession` events each (burst, and the live events of a resume).
 * Resolves once every append landed.
 */
export async function emitPhase(sim: SimControl, scenario: Scenario, sessionIds: string[], perSession: number): Promise<void> {
  if (perSession <= 0) return;
  if (scenario.schedule === 'burst' || scenario.schedule === 'resume') {
    await Promise.all(sessionIds.map((id) => sim.append(id, perSession)));
    return;
  }
  const intervalMs = 1000 / scenario.eventsPerSecond;
  const schedule: Array<{ atMs: number; id: string }> = [];
  sessionIds.forEach((id, i) => {
    const offset = (i * intervalMs) / sessionIds.length;
    for (let k = 0; k < perSession; k++) schedule.push({ atMs: offset + k * intervalMs, id });
  });
  schedule.sort((a, b) => a.atMs - b.atMs);
  const started = performance.now();
  const inFlight = new Set<Promise<void>>();
  for (const { atMs, id } of schedule) {
    const wait = started + atMs - performance.now();
    if (wait > 1) await delay(wait);
    while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
    const p: Promise<void> = sim.append(id, 1).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
}
