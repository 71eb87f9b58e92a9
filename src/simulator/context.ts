import type { ApiDialect } from './dialects.ts';
import type { FaultPlan } from './faults.ts';
import type { KeyRing } from './keys.ts';
import type { RequestLog } from './request-log.ts';
import type { HeldRequests } from './respond.ts';
import type { RunDriver } from './runs.ts';
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
  /** The keys accepted and the organisation each one sees (none: no credential required). */
  readonly keys: KeyRing;
  /** Lower-cased; 'authorization' means `Authorization: Bearer <key>`. */
  readonly authHeader: string;
  /** The runs of sessions created by `POST /sessions` (real dialect). */
  readonly runs: RunDriver;
  /** Every API request received, as sent (bounded). */
  readonly requestLog: RequestLog;
  /** `${organisation}\0${Idempotency-Key}` → the session it created. */
  readonly idempotency: Map<string, string>;
}
