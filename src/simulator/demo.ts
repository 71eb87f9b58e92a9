import { intBetween, mulberry32, pick, seedFor } from './prng.ts';
import type { Rng } from './prng.ts';
import type { SessionRecord, SessionStore } from './state.ts';
import type { ApiDialectName, FinishOutcome } from './types.ts';

/** Demo sessions kept live (not finished: pending, running, idle or paused) at any moment. */
export const DEMO_MIN_LIVE = 3;
/** Finished demo sessions kept readable besides the first ones (DEMO_KEEP_FIRST); older ones are deleted (their URLs answer 404). */
export const DEMO_KEEP_FINISHED = 20;
/** The first demo sessions (`demo-1` … `demo-3`, which the README's quick start names) stay readable for the run's life. */
export const DEMO_KEEP_FIRST = 3;
/** Gap between two events (simple dialect) or two steps (real dialect) of one demo session, in ms (uniform in this range). */
export const DEMO_EVENT_GAP_MS = [300, 1500] as const;
/** Real dialect: gap between the events of one step, in ms, so a step lands as a few events close together. */
export const DEMO_IN_STEP_GAP_MS = [30, 200] as const;
/** How long a demo session emits before it finishes, in ms (uniform in this range). */
export const DEMO_DURATION_MS = [30_000, 60_000] as const;
/** Chance that a demo session ends `failed`. */
export const DEMO_FAIL_CHANCE = 1 / 6;
/** Real dialect: chance that a demo session ends `timed_out`. */
export const DEMO_TIMEOUT_CHANCE = 1 / 25;
/** Real dialect: chance that a demo session ends `interrupted` (the rest, after failures and timeouts, complete). */
export const DEMO_INTERRUPT_CHANCE = 1 / 25;
/** Real dialect: chance that a demo session goes `idle` or `paused` once, between two steps. */
export const DEMO_PAUSE_CHANCE = 1 / 3;
/** Real dialect: how long such a pause lasts, in ms (uniform in this range). */
export const DEMO_PAUSE_MS = [2_000, 6_000] as const;
/** Real dialect: approximate base64 size of a demo screenshot, in bytes. */
export const DEMO_IMAGE_BYTES = [3_000, 12_000] as const;

const DEMO_ERRORS = [
  'tool run_python timed out after 120 s',
  'model returned an empty completion three times',
  'rate limit exceeded on upstream search provider',
  'browser crashed while loading the page',
];

interface DemoPause {
  readonly atMs: number;
  readonly state: 'idle' | 'paused';
  readonly forMs: number;
}

interface DemoPlan {
  readonly endsAtMs: number;
  readonly outcome: FinishOutcome;
  pause: DemoPause | undefined;
}

/** Keeps `demo-1`, `demo-2`, … running: at least three live; the first three and the 20 latest finished kept readable. */
export class DemoDriver {
  readonly #store: SessionStore;
  readonly #rng: Rng;
  readonly #api: ApiDialectName;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #live = new Set<string>();
  readonly #finished: string[] = [];
  readonly #first = new Set<string>();
  #nextNumber = 1;
  #stopped = false;
  #unsubscribe: () => void = () => {};

  constructor(store: SessionStore, seed: number, api: ApiDialectName = 'simple') {
    this.#store = store;
    this.#rng = mulberry32(seedFor(seed, 'demo'));
    this.#api = api;
  }

  /** Starts the first sessions; call once. */
  start(): void {
    this.#unsubscribe = this.#store.onEnd((record) => this.#onEnd(record));
    this.#topUp();
  }

  #topUp(): void {
    while (!this.#stopped && this.#live.size < DEMO_MIN_LIVE) this.#launch();
  }

  #launch(): void {
    let id = `demo-${this.#nextNumber++}`;
    // A test may have taken a demo-N name already; never collide with it.
    while (this.#store.get(id)) id = `demo-${this.#nextNumber++}`;
    if (this.#nextNumber - 1 <= DEMO_KEEP_FIRST) this.#first.add(id);
    const plan = this.#api === 'real' ? this.#planReal(id) : this.#planSimple(id);
    this.#live.add(id);
    this.#schedule(id, plan, intBetween(this.#rng, DEMO_EVENT_GAP_MS[0], DEMO_EVENT_GAP_MS[1]));
  }

  #planSimple(id: string): DemoPlan {
    this.#store.create(id, { detailBytes: intBetween(this.#rng, 120, 900) });
    const endsAtMs = Date.now() + intBetween(this.#rng, DEMO_DURATION_MS[0], DEMO_DURATION_MS[1]);
    const outcome = this.#rng() < DEMO_FAIL_CHANCE ? { error: DEMO_ERRORS[intBetween(this.#rng, 0, DEMO_ERRORS.length - 1)] } : {};
    return { endsAtMs, outcome, pause: undefined };
  }

  #planReal(id: string): DemoPlan {
    const record = this.#store.create(id, { imageBytes: intBetween(this.#rng, DEMO_IMAGE_BYTES[0], DEMO_IMAGE_BYTES[1]) });
    const durationMs = intBetween(this.#rng, DEMO_DURATION_MS[0], DEMO_DURATION_MS[1]);
    const roll = this.#rng();
    let outcome: FinishOutcome = {};
    if (roll < DEMO_FAIL_CHANCE) outcome = { error: pick(this.#rng, DEMO_ERRORS) };
    else if (roll < DEMO_FAIL_CHANCE + DEMO_TIMEOUT_CHANCE) {
      // A timed-out agent is asked for a final answer; sometimes it has one.
      outcome = this.#rng() < 0.5 ? { status: 'timed_out', answer: `Partial result: ${String(record.generator.defaultAnswer())}` } : { status: 'timed_out' };
    } else if (roll < DEMO_FAIL_CHANCE + DEMO_TIMEOUT_CHANCE + DEMO_INTERRUPT_CHANCE) outcome = { status: 'interrupted' };
    const pause: DemoPause | undefined =
      this.#rng() < DEMO_PAUSE_CHANCE
        ? {
            atMs: Date.now() + Math.round(durationMs * (0.25 + this.#rng() * 0.35)),
            state: this.#rng() < 0.5 ? 'idle' : 'paused',
            forMs: intBetween(this.#rng, DEMO_PAUSE_MS[0], DEMO_PAUSE_MS[1]),
          }
        : undefined;
    return { endsAtMs: Date.now() + durationMs, outcome, pause };
  }

  #schedule(id: string, plan: DemoPlan, delayMs: number): void {
    this.#timers.set(id, setTimeout(() => this.#tick(id, plan), delayMs));
  }

  #tick(id: string, plan: DemoPlan): void {
    this.#timers.delete(id);
    const record = this.#store.get(id);
    if (this.#stopped || !record || record.finishedAt !== null) return;
    // Pauses and the end wait for a step boundary, so no step is left half-told.
    const inStep = record.generator.pendingInStep() > 0;
    if (!inStep && plan.pause && Date.now() >= plan.pause.atMs) return this.#pause(record, plan);
    if (inStep || Date.now() < plan.endsAtMs) {
      this.#store.append(id, 1);
      const gap = record.generator.pendingInStep() > 0 ? DEMO_IN_STEP_GAP_MS : DEMO_EVENT_GAP_MS;
      return this.#schedule(id, plan, intBetween(this.#rng, gap[0], gap[1]));
    }
    this.#store.finish(id, { ...plan.outcome, closingEvents: true });
  }

  #pause(record: SessionRecord, plan: DemoPlan): void {
    const pause = plan.pause as DemoPause;
    plan.pause = undefined;
    this.#store.appendDrafts(record.id, record.generator.stateChange(pause.state));
    this.#store.setStatus(record.id, { status: pause.state });
    this.#timers.set(
      record.id,
      setTimeout(() => {
        this.#timers.delete(record.id);
        if (this.#stopped || this.#store.get(record.id) !== record || record.finishedAt !== null) return;
        // Idle ends with a new user message (events); a pause ends through the API (no event).
        if (pause.state === 'idle') this.#store.appendDrafts(record.id, record.generator.stateChange('running'));
        this.#store.setStatus(record.id, { status: 'running' });
        this.#tick(record.id, plan);
      }, pause.forMs),
    );
  }

  #onEnd(record: SessionRecord): void {
    const timer = this.#timers.get(record.id);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(record.id);
    const deleted = this.#store.get(record.id) !== record;
    // The first ones are never retired (a newcomer's quick start names them, minutes after the start).
    if (this.#live.delete(record.id) && !deleted && !this.#first.has(record.id)) this.#finished.push(record.id);
    if (deleted) {
      const at = this.#finished.indexOf(record.id);
      if (at >= 0) this.#finished.splice(at, 1);
    }
    while (this.#finished.length > DEMO_KEEP_FINISHED) {
      const oldest = this.#finished.shift();
      if (oldest !== undefined && this.#store.get(oldest)) this.#store.delete(oldest);
    }
    this.#topUp();
  }

  /** Clears every demo timer; idempotent. */
  stop(): void {
    this.#stopped = true;
    this.#unsubscribe();
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }
}
