/**
 * One chaos subscriber: a real EventSource that records every index it gets,
 * is closed and reopened at random with Last-Event-ID (as an app would after
 * a network change), reopens with backoff when pollcast refuses to start the
 * stream (503/502/404 on a faulted first contact), and may leave for good.
 * EventSource's own reconnects (stream ended by a restart or a slow drop) are
 * left to the library, which sends the last id it saw.
 */
import { EventSource } from 'eventsource';
import { mulberry32, type Rng } from '../../src/simulator/prng.ts';

/** How the subscriber asks for its first event. */
export type StartMode = { kind: 'beginning' } | { kind: 'last-event-id'; index: number } | { kind: 'from-index'; index: number };

/** What a subscriber is told to do, drawn up front from the scenario's seed. */
export interface SubscriberPlan {
  n: number;
  session: string;
  startAtMs: number;
  start: StartMode;
  /** Gap between forced reconnects (ms), drawn from the subscriber's own PRNG. */
  reconnectEveryMs: [number, number];
  /** Leaves for good this long after it started (ms), or never. */
  leaveAfterMs: number | null;
}

/** What a subscriber saw. */
export interface SubscriberRecord {
  plan: SubscriberPlan;
  indices: number[];
  timestamps: string[];
  ended: boolean;
  endLastIndex: number | null | undefined;
  left: boolean;
  opens: number;
  forcedReconnects: number;
  autoReconnects: number;
  refusedOpens: number;
  /** Refusals by HTTP status. */
  refusedByStatus: Record<string, number>;
  /** performance.now() of each refusal. */
  refusedAt: number[];
}

/** Index of the first event the subscriber must get, per the contract's start rules. */
export function expectedFirstIndex(start: StartMode): number {
  if (start.kind === 'beginning') return 0;
  return start.kind === 'last-event-id' ? start.index + 1 : start.index;
}

/** A running chaos subscriber. */
export class ChaosSubscriber {
  readonly record: SubscriberRecord;
  private readonly url: string;
  /** Draws the plan's reconnect gaps: the same sequence in every run of a seed. */
  private readonly rng: Rng;
  /** Draws retry delays after refusals, which depend on timing, so they must not shift `rng`. */
  private readonly retryRng: Rng;
  private es: EventSource | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private readonly onEnded: () => void;

  /** Connects each EventSource request (a load balancer's choice of instance), or plain fetch. */
  private readonly connect: typeof fetch;

  constructor(route: { baseUrl: string; fetch?: typeof fetch }, plan: SubscriberPlan, seed: number, onEnded: () => void) {
    const { baseUrl } = route;
    this.connect = route.fetch ?? fetch;
    this.rng = mulberry32(seed);
    this.retryRng = mulberry32(seed ^ 0x5bd1e995);
    this.onEnded = onEnded;
    const query = plan.start.kind === 'from-index' ? `?from_index=${plan.start.index}` : '';
    this.url = `${baseUrl}/sessions/${encodeURIComponent(plan.session)}/events${query}`;
    this.record = { plan, indices: [], timestamps: [], ended: false, endLastIndex: undefined, left: false, opens: 0, forcedReconnects: 0, autoReconnects: 0, refusedOpens: 0, refusedByStatus: {}, refusedAt: [] };
  }

  /** Whether it still expects events (not ended, not gone). */
  get active(): boolean {
    return !this.record.ended && !this.record.left && !this.stopped;
  }

  /** Opens the first stream and schedules the plan's disconnects. */
  start(): void {
    this.open();
    this.scheduleReconnect();
    const leave = this.record.plan.leaveAfterMs;
    if (leave !== null) {
      this.later(leave, () => {
        this.record.left = true;
        this.closeSource();
        this.onEnded();
      });
    }
  }

  /** Closes everything (idempotent). */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.closeSource();
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.active) fn();
    }, ms);
    this.timers.add(t);
  }

  private scheduleReconnect(): void {
    const [lo, hi] = this.record.plan.reconnectEveryMs;
    this.later(lo + this.rng() * (hi - lo), () => {
      this.record.forcedReconnects++;
      this.open();
      this.scheduleReconnect();
    });
  }

  private closeSource(): void {
    this.es?.close();
    this.es = null;
  }

  /** Opens a new EventSource resuming after the last index received (or at the plan's start). */
  private open(): void {
    this.closeSource();
    const rec = this.record;
    const { start } = rec.plan;
    const last = rec.indices.at(-1);
    const resumeHeader = last !== undefined ? String(last) : start.kind === 'last-event-id' ? String(start.index) : undefined;
    const fixed: Record<string, string> = resumeHeader !== undefined ? { 'Last-Event-ID': resumeHeader } : {};
    // The library's own Last-Event-ID (on its reconnects) wins over the one this source was opened with.
    const es = new EventSource(this.url, { fetch: (input, init) => this.connect(input, { ...init, headers: { ...fixed, ...(init?.headers as Record<string, string>) } }) });
    this.es = es;
    rec.opens++;
    es.onmessage = (e) => {
      if (this.es !== es) return;
      const d = JSON.parse(e.data as string) as { index: number; timestamp: string };
      rec.indices.push(d.index);
      rec.timestamps.push(d.timestamp);
    };
    es.addEventListener('end', (e) => {
      if (this.es !== es) return;
      rec.ended = true;
      rec.endLastIndex = (JSON.parse(e.data as string) as { last_index: number | null }).last_index;
      this.closeSource();
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
      this.onEnded();
    });
    es.addEventListener('error', (e) => {
      if (this.es !== es || !this.active) return;
      if (es.readyState !== es.CLOSED) {
        rec.autoReconnects++;
        return;
      }
      // Refused (non-200): EventSource gives up; an app that knows the session exists retries with backoff.
      rec.refusedOpens++;
      rec.refusedAt.push(performance.now());
      const code = String((e as Event & { code?: number }).code ?? 'none');
      rec.refusedByStatus[code] = (rec.refusedByStatus[code] ?? 0) + 1;
      this.es = null;
      this.later(200 + this.retryRng() * 800, () => this.open());
    });
  }
}
