import type { SessionStats, TotalStats } from './types.ts';

function zeroStats(): SessionStats {
  return { changes: 0, status: 0, inFlightChanges: 0, maxInFlightChanges: 0, changesByWait: { zero: 0, waiting: 0 }, faultsServed: 0 };
}

function copy(stats: SessionStats): SessionStats {
  return { ...stats, changesByWait: { ...stats.changesByWait } };
}

/** Request counters per session id (unknown ids included, so "nothing was sent upstream" is checkable). */
export class StatsRegistry {
  readonly #bySession = new Map<string, SessionStats>();
  #requests = 0;
  #inFlightTotal = 0;
  #maxInFlightTotal = 0;

  #entry(id: string): SessionStats {
    let entry = this.#bySession.get(id);
    if (!entry) {
      entry = zeroStats();
      this.#bySession.set(id, entry);
    }
    return entry;
  }

  /** Counts any request to the sessions API (control routes excluded). */
  countRequest(): void {
    this.#requests++;
  }

  /** Counts a changes request and marks it in flight; call the returned function once it is over. */
  beginChanges(id: string, waiting: boolean): () => void {
    const entry = this.#entry(id);
    entry.changes++;
    if (waiting) entry.changesByWait.waiting++;
    else entry.changesByWait.zero++;
    entry.inFlightChanges++;
    entry.maxInFlightChanges = Math.max(entry.maxInFlightChanges, entry.inFlightChanges);
    this.#inFlightTotal++;
    this.#maxInFlightTotal = Math.max(this.#maxInFlightTotal, this.#inFlightTotal);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      // The entry may have been replaced by resetStats(); decrement whichever is current.
      const current = this.#entry(id);
      current.inFlightChanges = Math.max(0, current.inFlightChanges - 1);
      this.#inFlightTotal = Math.max(0, this.#inFlightTotal - 1);
    };
  }

  countStatus(id: string): void {
    this.#entry(id).status++;
  }

  countFault(id: string): void {
    this.#entry(id).faultsServed++;
  }

  get(id: string): SessionStats {
    const entry = this.#bySession.get(id);
    return entry ? copy(entry) : zeroStats();
  }

  all(): Record<string, SessionStats> {
    const out: Record<string, SessionStats> = {};
    for (const [id, entry] of this.#bySession) out[id] = copy(entry);
    return out;
  }

  totals(): TotalStats {
    const total: TotalStats = { ...zeroStats(), requests: this.#requests };
    for (const entry of this.#bySession.values()) {
      total.changes += entry.changes;
      total.status += entry.status;
      total.faultsServed += entry.faultsServed;
      total.changesByWait.zero += entry.changesByWait.zero;
      total.changesByWait.waiting += entry.changesByWait.waiting;
    }
    total.inFlightChanges = this.#inFlightTotal;
    total.maxInFlightChanges = this.#maxInFlightTotal;
    return total;
  }

  requests(): number {
    return this.#requests;
  }

  /** Zeroes every counter; requests still in flight stay counted as in flight. */
  reset(): void {
    this.#requests = 0;
    for (const [id, entry] of this.#bySession) {
      if (entry.inFlightChanges === 0) {
        this.#bySession.delete(id);
        continue;
      }
      this.#bySession.set(id, { ...zeroStats(), inFlightChanges: entry.inFlightChanges, maxInFlightChanges: entry.inFlightChanges });
    }
    this.#maxInFlightTotal = this.#inFlightTotal;
  }
}
