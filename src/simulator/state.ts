import { createEventGenerator, DEFAULT_DETAIL_BYTES, emptyMetrics, withoutDetails } from './generator.ts';
import type { DraftEvent, EventGenerator } from './generator.ts';
import { InvalidInputError, SessionExistsError, UnknownSessionError } from './errors.ts';
import { mulberry32, seedFor } from './prng.ts';
import type { Metrics, SessionEvent, SessionSnapshot, SessionSpec, SessionSummary, TrajectoryChanges } from './types.ts';

/** Why a held long-poll is woken up. */
export type ChangeReason = 'events' | 'status' | 'finished' | 'deleted' | 'closed';

/** A held changes request waiting for events at or after `fromIndex`. */
export interface Waiter {
  readonly fromIndex: number;
  onChange(reason: ChangeReason): void;
}

/** One session's whole state. */
export interface SessionRecord {
  readonly id: string;
  readonly createdSeq: number;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  answer: unknown;
  metrics: Metrics;
  readonly events: SessionEvent[];
  readonly waiters: Set<Waiter>;
  readonly generator: EventGenerator;
  emitTimer: NodeJS.Timeout | undefined;
}

/** Events appended by one timer tick or one appendEvents call are capped, so a typo cannot eat the heap. */
const MAX_APPEND_PER_CALL = 100_000;

function isoNow(): string {
  return new Date().toISOString();
}

function nonNegativeInt(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new InvalidInputError(`${name} must be a non-negative integer`);
  }
  return value;
}

/** Checks a SessionSpec (it may come from JSON) and fills in its defaults. */
export function normalizeSpec(spec: SessionSpec): Required<Omit<SessionSpec, 'emitEveryMs' | 'emitCount'>> & Pick<SessionSpec, 'emitEveryMs' | 'emitCount'> {
  const emitEveryMs = spec.emitEveryMs === undefined ? undefined : nonNegativeInt('emitEveryMs', spec.emitEveryMs, 0);
  if (emitEveryMs === 0) throw new InvalidInputError('emitEveryMs must be positive');
  const emitCount = spec.emitCount === undefined ? undefined : nonNegativeInt('emitCount', spec.emitCount, 0);
  for (const key of ['finished', 'finishAfterEmit'] as const) {
    if (spec[key] !== undefined && typeof spec[key] !== 'boolean') throw new InvalidInputError(`${key} must be a boolean`);
  }
  const batchSize = nonNegativeInt('batchSize', spec.batchSize, 1);
  if (batchSize === 0 || batchSize > MAX_APPEND_PER_CALL) throw new InvalidInputError(`batchSize must be 1..${MAX_APPEND_PER_CALL}`);
  return {
    initialEvents: nonNegativeInt('initialEvents', spec.initialEvents, 0),
    finished: spec.finished ?? false,
    emitEveryMs,
    batchSize,
    emitCount,
    finishAfterEmit: spec.finishAfterEmit ?? emitCount !== undefined,
    detailBytes: nonNegativeInt('detailBytes', spec.detailBytes, DEFAULT_DETAIL_BYTES),
  };
}

/** Every session, its events and its held long-polls; owns the per-session emit timers. */
export class SessionStore {
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #endListeners = new Set<(record: SessionRecord) => void>();
  readonly #deleteListeners = new Set<(id: string) => void>();
  readonly #seed: number;
  #seq = 0;
  #closed = false;

  constructor(seed: number) {
    this.#seed = seed;
  }

  get(id: string): SessionRecord | undefined {
    return this.#sessions.get(id);
  }

  require(id: string): SessionRecord {
    const record = this.#sessions.get(id);
    if (!record) throw new UnknownSessionError(id);
    return record;
  }

  /** Sessions in creation order. */
  all(): SessionRecord[] {
    return [...this.#sessions.values()];
  }

  /** Calls `listener` whenever a session finishes or is deleted; returns the unsubscribe function. */
  onEnd(listener: (record: SessionRecord) => void): () => void {
    this.#endListeners.add(listener);
    return () => this.#endListeners.delete(listener);
  }

  /** Calls `listener` with the id of every deleted session; returns the unsubscribe function. */
  onDelete(listener: (id: string) => void): () => void {
    this.#deleteListeners.add(listener);
    return () => this.#deleteListeners.delete(listener);
  }

  create(id: string, spec: SessionSpec = {}): SessionRecord {
    if (this.#closed) throw new InvalidInputError('simulator is closed');
    if (typeof id !== 'string' || id.length === 0) throw new InvalidInputError('session id must be a non-empty string');
    if (this.#sessions.has(id)) throw new SessionExistsError(id);
    const s = normalizeSpec(spec);
    const metrics = emptyMetrics();
    const record: SessionRecord = {
      id,
      createdSeq: this.#seq++,
      status: 'queued',
      startedAt: null,
      finishedAt: null,
      error: null,
      answer: null,
      metrics,
      events: [],
      waiters: new Set(),
      generator: createEventGenerator(mulberry32(seedFor(this.#seed, id)), metrics, s.detailBytes),
      emitTimer: undefined,
    };
    this.#sessions.set(id, record);
    if (s.initialEvents > 0) this.append(id, s.initialEvents);
    if (s.finished) {
      this.finish(id);
      return record;
    }
    if (s.emitEveryMs !== undefined && s.emitCount !== 0) this.#startEmitTimer(record, s.emitEveryMs, s.batchSize, s.emitCount, s.finishAfterEmit);
    else if (s.emitCount === 0 && s.finishAfterEmit) this.finish(id);
    return record;
  }

  #startEmitTimer(record: SessionRecord, everyMs: number, batchSize: number, emitCount: number | undefined, finishAfter: boolean): void {
    let emitted = 0;
    record.emitTimer = setInterval(() => {
      const batch = emitCount === undefined ? batchSize : Math.min(batchSize, emitCount - emitted);
      emitted += batch;
      this.append(record.id, batch);
      if (emitCount !== undefined && emitted >= emitCount) {
        this.#stopEmitTimer(record);
        if (finishAfter && record.finishedAt === null) this.finish(record.id);
      }
    }, everyMs);
  }

  #stopEmitTimer(record: SessionRecord): void {
    if (record.emitTimer !== undefined) clearInterval(record.emitTimer);
    record.emitTimer = undefined;
  }

  /** Appends `count` generated step events; allowed after finish too, to stage the drain race. */
  append(id: string, count = 1): number[] {
    const record = this.require(id);
    const n = nonNegativeInt('count', count, 1);
    if (n > MAX_APPEND_PER_CALL) throw new InvalidInputError(`count must be at most ${MAX_APPEND_PER_CALL}`);
    const indices: number[] = [];
    for (let i = 0; i < n; i++) indices.push(this.#push(record, record.generator.next()));
    if (n > 0) this.#notify(record, 'events');
    return indices;
  }

  /** Appends one explicit event (the demo's closing `answer`/`error`). */
  appendDraft(id: string, draft: DraftEvent): number {
    const record = this.require(id);
    const index = this.#push(record, draft);
    this.#notify(record, 'events');
    return index;
  }

  #push(record: SessionRecord, draft: DraftEvent): number {
    if (record.status === 'queued') {
      record.status = 'running';
      record.startedAt = isoNow();
    }
    // Stamped at append time: benchmarks measure end-to-end latency from emitted_at_ms.
    const emittedAtMs = performance.timeOrigin + performance.now();
    record.events.push({
      type: draft.type,
      data: { ...draft.data, emitted_at_ms: emittedAtMs },
      timestamp: new Date(emittedAtMs).toISOString(),
    });
    return record.events.length - 1;
  }

  /** Moves a session to `completed` (or `failed` when `error` is given) without appending an event. */
  finish(id: string, outcome: { error?: string; answer?: unknown } = {}): void {
    const record = this.require(id);
    if (record.finishedAt !== null) throw new InvalidInputError(`session already finished: ${id}`);
    if (outcome.error !== undefined && typeof outcome.error !== 'string') throw new InvalidInputError('error must be a string');
    this.#stopEmitTimer(record);
    const now = isoNow();
    if (outcome.error !== undefined) {
      record.status = 'failed';
      record.error = outcome.error;
      record.answer = null;
    } else {
      record.status = 'completed';
      record.startedAt ??= now;
      record.answer = outcome.answer ?? record.generator.defaultAnswer();
    }
    record.finishedAt = now;
    this.#notify(record, 'finished');
    for (const listener of [...this.#endListeners]) listener(record);
  }

  /** Changes status and/or metrics without an event; held long-polls answer with the new snapshot. */
  setStatus(id: string, patch: { status?: string; metrics?: Partial<Metrics> }): void {
    const record = this.require(id);
    if (patch.status !== undefined) {
      if (typeof patch.status !== 'string' || patch.status === '') throw new InvalidInputError('status must be a non-empty string');
      record.status = patch.status;
      if (patch.status === 'running') record.startedAt ??= isoNow();
    }
    if (patch.metrics !== undefined) {
      if (typeof patch.metrics !== 'object' || patch.metrics === null) throw new InvalidInputError('metrics must be an object');
      Object.assign(record.metrics, structuredClone(patch.metrics));
    }
    this.#notify(record, 'status');
  }

  delete(id: string): void {
    const record = this.require(id);
    this.#stopEmitTimer(record);
    this.#sessions.delete(id);
    for (const listener of [...this.#deleteListeners]) listener(id);
    this.#notify(record, 'deleted');
    for (const listener of [...this.#endListeners]) listener(record);
  }

  /** Registers a held long-poll; returns the function that unregisters it. */
  addWaiter(record: SessionRecord, waiter: Waiter): () => void {
    record.waiters.add(waiter);
    return () => record.waiters.delete(waiter);
  }

  #notify(record: SessionRecord, reason: ChangeReason): void {
    for (const waiter of [...record.waiters]) {
      if (reason === 'events' && record.events.length <= waiter.fromIndex) continue;
      waiter.onChange(reason);
    }
  }

  snapshot(record: SessionRecord): SessionSnapshot {
    return {
      status: record.status,
      started_at: record.startedAt,
      finished_at: record.finishedAt,
      error: record.error,
      answer: record.answer,
      metrics: structuredClone(record.metrics),
    };
  }

  changes(record: SessionRecord, fromIndex: number, limit: number, includeDetails: boolean): TrajectoryChanges {
    const slice = record.events.slice(fromIndex, fromIndex + limit);
    const new_events = includeDetails ? slice : slice.map((e) => ({ ...e, data: withoutDetails(e.data) }));
    return { ...this.snapshot(record), new_events };
  }

  summary(record: SessionRecord): SessionSummary {
    return {
      id: record.id,
      status: record.status,
      started_at: record.startedAt,
      finished_at: record.finishedAt,
      error: record.error,
      events: record.events.length,
      steps: record.metrics.steps,
      total_cost: record.metrics.total_cost,
    };
  }

  /** Stops every emit timer and wakes every held long-poll with 'closed'; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const record of this.#sessions.values()) {
      this.#stopEmitTimer(record);
      this.#notify(record, 'closed');
    }
    this.#endListeners.clear();
    this.#deleteListeners.clear();
  }
}
