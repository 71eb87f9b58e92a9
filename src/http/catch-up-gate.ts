/**
 * Durable Streams catch-up answers that re-read history from the upstream (a
 * range older than the session's buffer): each may read up to
 * CATCH_UP_MAX_BYTES (32 MiB: about a thousand upstream pages of small
 * events) and holds it until the client has read it. At most
 * CATCH_UP_FROM_UPSTREAM_MAX run at once; the next waits up to
 * CATCH_UP_QUEUE_WAIT_MS for one to finish, then is refused with 429 and
 * `Retry-After: 1`, which `@durable-streams/client` honours. Without it, one
 * client made about 1,100 upstream calls and held 65-90 MB per request, with
 * no limit (helper audit, 6 Dec 2026).
 */
import { TooManyRequestsError } from '../errors.ts';

/** Catch-up answers that read from the upstream at once. */
export const CATCH_UP_FROM_UPSTREAM_MAX = 4;
/** How long one more waits for a place before it is refused (ms). */
export const CATCH_UP_QUEUE_WAIT_MS = 5_000;

/** Places for catch-up answers that read from the upstream. */
export class CatchUpGate {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly max: number;
  private readonly waitMs: number;

  constructor(max = CATCH_UP_FROM_UPSTREAM_MAX, waitMs = CATCH_UP_QUEUE_WAIT_MS) {
    this.max = max;
    this.waitMs = waitMs;
  }

  /** Answers running now (tests, metrics). */
  get size(): number {
    return this.running;
  }

  /** Takes a place (waiting for one, at most `waitMs`); resolves to its release, called once when the answer is done. */
  async enter(signal: AbortSignal): Promise<() => void> {
    // A place freed goes straight to the longest waiting (it is not counted free in between).
    if (this.running >= this.max) await this.queue(signal);
    else this.running++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    };
  }

  private queue(signal: AbortSignal): Promise<void> {
    // A client that left (or leaves while it waits) gets no place; its answer, never seen, is the same refusal.
    const refusal = () => new TooManyRequestsError(`too many catch-up reads of older history at once (${this.max}); retry shortly`, 1, 'catch_up_reads');
    if (signal.aborted) return Promise.reject(refusal());
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        const at = this.waiting.indexOf(wake);
        if (at >= 0) this.waiting.splice(at, 1);
        if (err) reject(err);
        else resolve();
      };
      const wake = () => done();
      const onAbort = () => done(refusal());
      const timer = setTimeout(() => done(refusal()), this.waitMs);
      this.waiting.push(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
