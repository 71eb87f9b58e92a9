import type { ApiDialect } from './dialects.ts';
import type { FaultPlan } from './faults.ts';
import type { HeldRequests } from './respond.ts';
import type { SessionStore } from './state.ts';
import type { StatsRegistry } from './stats.ts';

/** What the HTTP handlers share: state, counters, faults, held responses and the fixed limits. */
export interface SimContext {
  readonly dialect: ApiDialect;
  readonly store: SessionStore;
  readonly stats: StatsRegistry;
  readonly faults: FaultPlan;
  readonly held: HeldRequests;
  readonly maxWaitSeconds: number;
  readonly maxLimit: number;
  /** Undefined: no credential required. */
  readonly apiKey: string | undefined;
  /** Lower-cased; 'authorization' means `Authorization: Bearer <key>`. */
  readonly authHeader: string;
}
