import { wallClockMs } from './clock.ts';
import type { ApiDialect } from './dialects.ts';
import { InvalidInputError, SessionExistsError, UnknownSessionError } from './errors.ts';
import type { DraftEvent } from './generator.ts';
import type { SessionRecord, Waiter, ChangeReason } from './record.ts';
import { resolveOutcome } from './outcome.ts';
import { MAX_APPEND_PER_CALL, nonNegativeInt, normalizeSpec } from './spec.ts';
import type { AnyMetrics, FinishOutcome, RealWireEvent, SessionEvent, SessionSnapshot, SessionSpec, SessionSummary, StatusPatch, TrajectoryChanges } from './types.ts';

export type { ChangeReason, SessionRecord, Waiter } from './record.ts';

/** The agent name of sessions created without a SessionRequest (the control API, the demo). */
export const DEFAULT_AGENT = 'simulated-web-agent';

function isoNow(): string {
  return new Date().toISOString();
}

/** Every session, its events and its held long-polls; owns the per-session emit timers. */
export class SessionStore {
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #endListeners = new Set<(record: SessionRecord) => void>();
  readonly #deleteListeners = new Set<(id: string) => void>();
  readonly #seed: number;
  readonly #dialect: ApiDialect;
  #seq = 0;
  #closed = false;

  constructor(seed: number, dialect: ApiDialect) {
    this.#seed = seed;
    this.#dialect = dialect;
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
    const generator = this.#dialect.createGenerator(this.#seed, id, s);
    const record: SessionRecord = {
      id,
      createdSeq: this.#seq++,
      createdAt: isoNow(),
      organisation: s.organisation,
      request: s.request ?? { agent: DEFAULT_AGENT },
      shared: false,
      received: [],
      status: this.#dialect.initialStatus,
      startedAt: null,
      finishedAt: null,
      error: null,
      answer: null,
      metrics: generator.metrics,
      events: [],
      waiters: new Set(),
      generator,
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

  /** Appends explicit events (the demo's closing and state-change events); returns their indices. */
  appendDrafts(id: string, drafts: DraftEvent[]): number[] {
    const record = this.require(id);
    const indices = drafts.map((draft) => this.#push(record, draft));
    if (indices.length > 0) this.#notify(record, 'events');
    return indices;
  }

  #push(record: SessionRecord, draft: DraftEvent): number {
    if (record.status === this.#dialect.initialStatus) {
      record.status = 'running';
      record.startedAt = isoNow();
    }
    // Stamped at append time: benchmarks measure end-to-end latency from emitted_at_ms.
    const emittedAtMs = wallClockMs();
    record.events.push({
      type: draft.type,
      data: { ...draft.data, emitted_at_ms: emittedAtMs },
      timestamp: new Date(emittedAtMs).toISOString(),
    });
    return record.events.length - 1;
  }

  /**
   * Ends a session (see FinishOutcome). No event is appended unless `closingEvents`
   * asks for them, so counts stay predictable; those land (and release held polls)
   * just before the status turns terminal, as an agent's last events do.
   */
  finish(id: string, outcome: FinishOutcome = {}): void {
    const record = this.require(id);
    if (record.finishedAt !== null) throw new InvalidInputError(`session already finished: ${id}`);
    const resolved = resolveOutcome(outcome, () => record.generator.defaultAnswer());
    if (outcome.closingEvents === true) this.appendDrafts(id, record.generator.closing(resolved));
    this.#stopEmitTimer(record);
    const now = isoNow();
    record.status = resolved.status;
    record.error = resolved.error;
    record.answer = resolved.answer;
    if (resolved.status === 'completed') record.startedAt ??= now;
    record.finishedAt = now;
    this.#notify(record, 'finished');
    for (const listener of [...this.#endListeners]) listener(record);
  }

  /** Changes status and/or metrics without an event; whether held long-polls answer is the dialect's call. */
  setStatus(id: string, patch: StatusPatch): void {
    const record = this.require(id);
    if (typeof patch !== 'object' || patch === null) throw new InvalidInputError('status patch must be an object');
    if (patch.status !== undefined) {
      if (typeof patch.status !== 'string' || patch.status === '') throw new InvalidInputError('status must be a non-empty string');
      this.#dialect.checkStatusChange(record, patch.status);
    }
    if (patch.metrics !== undefined && (typeof patch.metrics !== 'object' || patch.metrics === null)) throw new InvalidInputError('metrics must be an object');
    if (patch.status !== undefined) {
      record.status = patch.status;
      if (patch.status === 'running') record.startedAt ??= isoNow();
    }
    if (patch.metrics !== undefined) Object.assign(record.metrics, structuredClone(patch.metrics));
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

  /** The full state (simple dialect's /status, and the control API's answer). */
  snapshot(record: SessionRecord): SessionSnapshot<AnyMetrics> {
    return {
      status: record.status,
      started_at: record.startedAt,
      finished_at: record.finishedAt,
      error: record.error,
      answer: record.answer,
      metrics: structuredClone(record.metrics),
    };
  }

  /** The 200 body of `/status` in the simulator's dialect. */
  statusBody(record: SessionRecord): object {
    return this.#dialect.statusBody(record, this.snapshot(record));
  }

  /** The 200 body of `/changes`: the snapshot and up to `limit` events from `fromIndex`. */
  changes(record: SessionRecord, fromIndex: number, limit: number, includeEvents: boolean): TrajectoryChanges<AnyMetrics, SessionEvent | RealWireEvent> {
    const new_events = record.events.slice(fromIndex, fromIndex + limit).map((e) => this.#dialect.eventView(e, includeEvents));
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
