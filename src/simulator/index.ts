import type { SimContext } from './context.ts';
import { DemoDriver } from './demo.ts';
import { dialectFor } from './dialects.ts';
import { InvalidInputError } from './errors.ts';
import { FaultPlan } from './faults.ts';
import { KeyRing } from './keys.ts';
import { RequestLog } from './request-log.ts';
import { HeldRequests } from './respond.ts';
import { DEFAULT_RUN_EVENT_EVERY_MS, DEFAULT_RUN_EVENTS, RunDriver } from './runs.ts';
import { createSimServer, listen, shutdown } from './server.ts';
import { SessionStore } from './state.ts';
import { StatsRegistry } from './stats.ts';
import type { Simulator, SimulatorOptions } from './types.ts';

export type * from './types.ts';
export { SimulatorError, UnknownSessionError, SessionExistsError, InvalidInputError } from './errors.ts';
export { DEMO_MIN_LIVE, DEMO_KEEP_FINISHED, DEMO_KEEP_FIRST } from './demo.ts';
export { UNKNOWN_STATS_MAX_IDS } from './stats.ts';
export { REAL_BASE_PATH } from './dialects.ts';
export { DEFAULT_IMAGE_BYTES, MAX_IMAGE_BYTES } from './trajectory.ts';
export { DEFAULT_RUN_EVENT_EVERY_MS, DEFAULT_RUN_EVENTS } from './runs.ts';
export { REQUEST_LOG_MAX } from './request-log.ts';
export { MAX_API_BODY_BYTES } from './api-body.ts';

/** Server cap on wait_for_seconds when the options name none. */
export const DEFAULT_MAX_WAIT_SECONDS = 30;
/** Server cap on limit when the options name none. */
export const DEFAULT_MAX_LIMIT = 100;
/** Seed of the PRNGs when the options name none. */
export const DEFAULT_SEED = 1;

function checkNumber(name: string, value: number | undefined, fallback: number, { integer = false, min = 0 } = {}): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new InvalidInputError(`${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}`);
  }
  return value;
}

/** Starts the simulated sessions API (CONTRACT §1) on a real socket; close() stops everything it started. */
export async function createSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const seed = checkNumber('seed', opts.seed, DEFAULT_SEED, { integer: true, min: Number.MIN_SAFE_INTEGER });
  if (opts.apiKey !== undefined && (typeof opts.apiKey !== 'string' || opts.apiKey === '')) throw new InvalidInputError('apiKey must be a non-empty string');
  const dialect = dialectFor(opts.api);
  const store = new SessionStore(seed, dialect);
  const stats = new StatsRegistry((id) => store.get(id) !== undefined);
  store.onDelete((id) => stats.retire(id));
  const authHeader = (opts.authHeader ?? 'authorization').toLowerCase();
  const run = opts.run ?? {};
  const runs = new RunDriver(store, {
    eventEveryMs: checkNumber('run.eventEveryMs', run.eventEveryMs, DEFAULT_RUN_EVENT_EVERY_MS, { integer: true, min: 1 }),
    events: checkNumber('run.events', run.events, DEFAULT_RUN_EVENTS, { integer: true }),
  });
  const ctx: SimContext = {
    dialect,
    store,
    stats,
    faults: new FaultPlan(),
    held: new HeldRequests(),
    maxWaitSeconds: checkNumber('maxWaitSeconds', opts.maxWaitSeconds, DEFAULT_MAX_WAIT_SECONDS),
    maxLimit: checkNumber('maxLimit', opts.maxLimit, DEFAULT_MAX_LIMIT, { integer: true, min: 1 }),
    keys: new KeyRing(opts.apiKey, opts.apiKeys, authHeader),
    authHeader,
    runs,
    requestLog: new RequestLog(),
    idempotency: new Map(),
  };
  const server = createSimServer(ctx);
  const origin = await listen(server, checkNumber('port', opts.port, 0, { integer: true }), opts.host ?? '127.0.0.1');
  const demo = opts.demo ? new DemoDriver(store, seed, dialect.name) : undefined;
  demo?.start();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      demo?.stop();
      runs.close();
      store.close();
      ctx.held.cancelAll();
      await shutdown(server);
    })();
    return closing;
  };

  return {
    url: `${origin}${dialect.basePath}`,
    origin,
    api: dialect.name,
    faults: ctx.faults,
    createSession: (id, spec) => void store.create(id, spec),
    appendEvents: (id, count = 1) => store.append(id, count),
    finish: (id, outcome) => store.finish(id, outcome),
    setStatus: (id, patch) => store.setStatus(id, patch),
    deleteSession: (id) => store.delete(id),
    eventCount: (id) => store.require(id).events.length,
    events: (id) => structuredClone(store.require(id).events),
    listSessions: () => store.all().map((r) => store.summary(r)),
    stats: (id) => ctx.stats.get(id),
    allStats: () => ctx.stats.all(),
    statsSize: () => ctx.stats.size(),
    totals: () => ctx.stats.totals(),
    totalRequests: () => ctx.stats.requests(),
    resetStats: () => ctx.stats.reset(),
    addKey: (key, organisation) => ctx.keys.add(key, organisation),
    revokeKey: (key) => ctx.keys.revoke(key),
    requests: () => ctx.requestLog.all(),
    clearRequests: () => ctx.requestLog.clear(),
    received: (id) => structuredClone(store.require(id).received),
    organisationOf: (id) => store.require(id).organisation,
    close,
  };
}
