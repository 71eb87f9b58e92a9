/** Reading the session list stream (`GET /sessions/events`) the way a viewer does. */
import type { Simulator } from '../../src/simulator/index.ts';
import type { Recorder } from './harness.ts';

/** What a viewer holds: the last snapshot, then every upsert and remove after it, by session id. */
export function listOf(r: Recorder): Map<string, any> {
  const rows = new Map<string, any>();
  for (const m of r.messages) {
    if (m.type === 'snapshot') {
      rows.clear();
      for (const item of m.data.items) rows.set(item.id, item);
    } else if (m.type === 'upsert') rows.set(m.data.id, m.data);
    else if (m.type === 'remove') rows.delete(m.data.id);
  }
  return rows;
}

/** The upstream list calls (`GET …/api/v2/sessions`) the simulator has seen. */
export function listCalls(sim: Simulator): number {
  return sim.requests().filter((r) => r.method === 'GET' && /^\/api\/v2\/sessions(\?|$)/.test(r.target)).length;
}
