import type { SessionStore } from './state.ts';

/** Gap between two events of a run started by `POST /sessions`, in ms, unless the options name one. */
export const DEFAULT_RUN_EVENT_EVERY_MS = 250;
/** Events a run emits before it completes with its closing events, unless the options name a number. */
export const DEFAULT_RUN_EVENTS = 24;

/** How the runs that `POST /sessions` starts are paced. */
export interface RunOptions {
  /** Gap between two events, in ms (default DEFAULT_RUN_EVENT_EVERY_MS). */
  eventEveryMs?: number;
  /** Events before the run completes (default DEFAULT_RUN_EVENTS). */
  events?: number;
}

/** Statuses in which a run takes no step: it waits for resume, a message or tool results. */
const WAITING = new Set(['paused', 'idle', 'awaiting_tool_results']);

interface Run {
  timer: NodeJS.Timeout;
  emitted: number;
  forceAnswer: boolean;
}

/**
 * Drives the sessions the REST API creates: one trajectory event per tick while the
 * status is active (a pause really stops it), then completion with the closing events
 * (answer_event, AgentCompletionEvent), or at the next tick after `force_answer`.
 */
export class RunDriver {
  readonly #store: SessionStore;
  readonly #everyMs: number;
  readonly #events: number;
  readonly #runs = new Map<string, Run>();

  constructor(store: SessionStore, options: RunOptions = {}) {
    this.#store = store;
    this.#everyMs = options.eventEveryMs ?? DEFAULT_RUN_EVENT_EVERY_MS;
    this.#events = options.events ?? DEFAULT_RUN_EVENTS;
    store.onEnd((record) => this.#stop(record.id));
  }

  /** Starts the run of a new session. */
  start(id: string): void {
    if (this.#runs.has(id)) return;
    const run: Run = { emitted: 0, forceAnswer: false, timer: setInterval(() => this.#tick(id, run), this.#everyMs) };
    this.#runs.set(id, run);
  }

  /** True when a run drives this session. */
  has(id: string): boolean {
    return this.#runs.has(id);
  }

  /** The run answers at its next step. */
  forceAnswer(id: string): void {
    const run = this.#runs.get(id);
    if (run) run.forceAnswer = true;
  }

  #tick(id: string, run: Run): void {
    const record = this.#store.get(id);
    if (!record || record.finishedAt !== null) return this.#stop(id);
    if (WAITING.has(record.status)) return;
    if (run.forceAnswer || run.emitted >= this.#events) {
      this.#store.finish(id, { status: 'completed', closingEvents: true });
      return;
    }
    this.#store.append(id, 1);
    run.emitted += 1;
  }

  #stop(id: string): void {
    const run = this.#runs.get(id);
    if (run) clearInterval(run.timer);
    this.#runs.delete(id);
  }

  /** Stops every run; idempotent. */
  close(): void {
    for (const id of [...this.#runs.keys()]) this.#stop(id);
  }
}
