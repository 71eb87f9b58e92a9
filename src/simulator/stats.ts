import { LRUCache } from 'lru-cache';
import type { SessionStats, StatsSize, TotalStats } from './types.ts';

/**
 * Ids that name no session keep their counters in an LRU of this many ids (oldest
 * forgotten first): recent probes stay checkable ("nothing reached the upstream")
 * while probes of random ids cannot grow the map without bound.
 */
export const UNKNOWN_STATS_MAX_IDS = 1_000;

function zeroStats(): SessionStats {
  return { changes: 0, status: 0, inFlightChanges: 0, maxInFlightChanges: 0, changesByWait: { zero: 0, waiting: 0 }, faultsServed: 0 };
}

function copy(stats: SessionStats): SessionStats {
  return { ...stats, changesByWait: { ...stats.changesByWait } };
}

/** Counters of requests that are still in flight survive a reset; the rest start again from zero. */
function afterReset(entry: SessionStats): SessionStats | undefined {
  if (entry.inFlightChanges === 0) return undefined;
  return { ...zeroStats(), inFlightChanges: entry.inFlightChanges, maxInFlightChanges: entry.inFlightChanges };
}

/**
 * Request counters per session id from the URL. Existing sessions are counted
 * exactly for as long as they exist; unknown and deleted ids live in a bounded LRU.
 * Totals are running sums, so forgetting an unknown id does not change them.
 */
export class StatsRegistry {
  readonly #sessions = new Map<string, SessionStats>();
  readonly #unknown = new LRUCache<string, SessionStats>({ max: UNKNOWN_STATS_MAX_IDS });
  readonly #isSession: (id: string) => boolean;
  #totals: TotalStats = { ...zeroStats(), requests: 0 };

  /** `isSession(id)` tells whether the id names a session now (its counters are then kept exactly). */
  constructor(isSession: (id: string) => boolean) {
    this.#isSession = isSession;
  }

  #entry(id: string): SessionStats {
    const exact = this.#sessions.get(id);
    if (exact) return exact;
    const probed = this.#unknown.get(id);
    if (this.#isSession(id)) {
      // Probes made before the session was created stay counted once it exists.
      this.#unknown.delete(id);
      const entry = probed ?? zeroStats();
      this.#sessions.set(id, entry);
      return entry;
    }
    if (probed) return probed;
    const entry = zeroStats();
    this.#unknown.set(id, entry);
    return entry;
  }

  /** Counts any request to the sessions API (control routes excluded). */
  countRequest(): void {
    this.#totals.requests++;
  }

  /** Counts a changes request and marks it in flight; call the returned function once it is over. */
  beginChanges(id: string, waiting: boolean): () => void {
    const entry = this.#entry(id);
    const wait = waiting ? 'waiting' : 'zero';
    entry.changes++;
    entry.changesByWait[wait]++;
    entry.inFlightChanges++;
    entry.maxInFlightChanges = Math.max(entry.maxInFlightChanges, entry.inFlightChanges);
    const totals = this.#totals;
    totals.changes++;
    totals.changesByWait[wait]++;
    totals.inFlightChanges++;
    totals.maxInFlightChanges = Math.max(totals.maxInFlightChanges, totals.inFlightChanges);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      // The entry may have been replaced by resetStats() or moved between maps; decrement whichever is current.
      const current = this.#entry(id);
      current.inFlightChanges = Math.max(0, current.inFlightChanges - 1);
      this.#totals.inFlightChanges = Math.max(0, this.#totals.inFlightChanges - 1);
    };
  }

  countStatus(id: string): void {
    this.#entry(id).status++;
    this.#totals.status++;
  }

  countFault(id: string): void {
    this.#entry(id).faultsServed++;
    this.#totals.faultsServed++;
  }

  /** A deleted session's counters move to the LRU of unknown ids (its URLs now answer 404). */
  retire(id: string): void {
    const entry = this.#sessions.get(id);
    if (!entry) return;
    this.#sessions.delete(id);
    this.#unknown.set(id, entry);
  }

  get(id: string): SessionStats {
    const entry = this.#sessions.get(id) ?? this.#unknown.peek(id);
    return entry ? copy(entry) : zeroStats();
  }

  /** Existing sessions first, then the remembered unknown ids (most recent first). */
  all(): Record<string, SessionStats> {
    const out: Record<string, SessionStats> = {};
    for (const [id, entry] of this.#sessions) out[id] = copy(entry);
    for (const [id, entry] of this.#unknown.entries()) out[id] = copy(entry);
    return out;
  }

  /** How many ids have counters now, split by kind (the unknown side never exceeds UNKNOWN_STATS_MAX_IDS). */
  size(): StatsSize {
    return { sessions: this.#sessions.size, unknown: this.#unknown.size };
  }

  totals(): TotalStats {
    return { ...this.#totals, changesByWait: { ...this.#totals.changesByWait } };
  }

  requests(): number {
    return this.#totals.requests;
  }

  /** Zeroes every counter; requests still in flight stay counted as in flight. */
  reset(): void {
    for (const [id, entry] of [...this.#sessions]) {
      const next = afterReset(entry);
      if (next) this.#sessions.set(id, next);
      else this.#sessions.delete(id);
    }
    for (const [id, entry] of [...this.#unknown.entries()]) {
      const next = afterReset(entry);
      if (next) this.#unknown.set(id, next);
      else this.#unknown.delete(id);
    }
    const inFlight = this.#totals.inFlightChanges;
    this.#totals = { ...zeroStats(), requests: 0, inFlightChanges: inFlight, maxInFlightChanges: inFlight };
  }
}
