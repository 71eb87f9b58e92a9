/**
 * Requests under way that a graceful stop lets finish, within its budget,
 * rather than cut: forwarded calls, whose caller (a POST, say) could not tell
 * whether a cut one took effect.
 */
export class InFlight {
  private count = 0;
  private waiters: Array<() => void> = [];

  /** How many are under way now. */
  get size(): number {
    return this.count;
  }

  /** Runs `work`, counted as under way until it settles. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    this.count++;
    try {
      return await work();
    } finally {
      if (--this.count === 0) for (const wake of this.waiters.splice(0)) wake();
    }
  }

  /** Resolves once none is under way. */
  idle(): Promise<void> {
    return this.count === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}
