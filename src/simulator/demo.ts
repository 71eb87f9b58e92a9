import { intBetween, mulberry32, seedFor } from './prng.ts';
import type { Rng } from './prng.ts';
import type { SessionRecord, SessionStore } from './state.ts';

/** Demo sessions kept live (queued or running) at any moment. */
export const DEMO_MIN_LIVE = 3;
/** Finished demo sessions kept readable; older ones are deleted (their URLs answer 404). */
export const DEMO_KEEP_FINISHED = 20;
/** Gap between two events of one demo session, in ms (uniform in this range). */
export const DEMO_EVENT_GAP_MS = [300, 1500] as const;
/** How long a demo session emits before it finishes, in ms (uniform in this range). */
export const DEMO_DURATION_MS = [30_000, 60_000] as const;
/** Chance that a demo session ends `failed` rather than `completed`. */
export const DEMO_FAIL_CHANCE = 1 / 6;

const DEMO_ERRORS = [
  'tool run_python timed out after 120 s',
  'model returned an empty completion three times',
  'rate limit exceeded on upstream search provider',
  'browser crashed while loading the page',
];

interface DemoPlan {
  readonly endsAtMs: number;
  readonly error: string | undefined;
}

/** Keeps `demo-1`, `demo-2`, … running: at least three live, the 20 latest finished kept readable. */
export class DemoDriver {
  readonly #store: SessionStore;
  readonly #rng: Rng;
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #live = new Set<string>();
  readonly #finished: string[] = [];
  #nextNumber = 1;
  #stopped = false;
  #unsubscribe: () => void = () => {};

  constructor(store: SessionStore, seed: number) {
    this.#store = store;
    this.#rng = mulberry32(seedFor(seed, 'demo'));
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
    this.#store.create(id, { detailBytes: intBetween(this.#rng, 120, 900) });
    this.#live.add(id);
    const plan: DemoPlan = {
      endsAtMs: Date.now() + intBetween(this.#rng, DEMO_DURATION_MS[0], DEMO_DURATION_MS[1]),
      error: this.#rng() < DEMO_FAIL_CHANCE ? DEMO_ERRORS[intBetween(this.#rng, 0, DEMO_ERRORS.length - 1)] : undefined,
    };
    this.#schedule(id, plan);
  }

  #schedule(id: string, plan: DemoPlan): void {
    const gapMs = intBetween(this.#rng, DEMO_EVENT_GAP_MS[0], DEMO_EVENT_GAP_MS[1]);
    this.#timers.set(id, setTimeout(() => this.#tick(id, plan), gapMs));
  }

  #tick(id: string, plan: DemoPlan): void {
    this.#timers.delete(id);
    const record = this.#store.get(id);
    if (this.#stopped || !record || record.finishedAt !== null) return;
    if (Date.now() < plan.endsAtMs) {
      this.#store.append(id, 1);
      this.#schedule(id, plan);
      return;
    }
    const outcome = plan.error !== undefined ? { error: plan.error } : { answer: record.generator.defaultAnswer() };
    this.#store.appendDraft(id, record.generator.final(outcome));
    this.#store.finish(id, outcome);
  }

  #onEnd(record: SessionRecord): void {
    const timer = this.#timers.get(record.id);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(record.id);
    const deleted = this.#store.get(record.id) !== record;
    if (this.#live.delete(record.id) && !deleted) this.#finished.push(record.id);
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
