/**
 * A fixed-bucket latency histogram: cheap to record on the load client's hot
 * path, mergeable across client processes, exact maximum.
 */

/** Bucket width below FINE_LIMIT_MS (ms): 10 µs. */
const FINE_STEP_MS = 0.01;
/** Latencies below this are counted at 10 µs resolution (ms). */
const FINE_LIMIT_MS = 1_000;
/** Bucket width from FINE_LIMIT_MS on (ms). */
const COARSE_STEP_MS = 1;
/** Latencies at or above this land in the last bucket (ms); the exact maximum is kept apart. */
const COARSE_LIMIT_MS = 120_000;

const FINE_BUCKETS = FINE_LIMIT_MS / FINE_STEP_MS;
const BUCKETS = FINE_BUCKETS + (COARSE_LIMIT_MS - FINE_LIMIT_MS) / COARSE_STEP_MS + 1;

/** Serialised form: non-empty buckets as [bucket, count] pairs. */
export interface HistogramData {
  buckets: Array<[number, number]>;
  count: number;
  maxMs: number;
  /** Samples below zero (clock disagreement between processes), counted as 0. */
  negative: number;
}

function bucketOf(ms: number): number {
  if (ms < FINE_LIMIT_MS) return Math.floor(ms / FINE_STEP_MS);
  if (ms >= COARSE_LIMIT_MS) return BUCKETS - 1;
  return FINE_BUCKETS + Math.floor((ms - FINE_LIMIT_MS) / COARSE_STEP_MS);
}

// Upper edge of a bucket: percentiles are reported pessimistically.
function upperEdgeMs(bucket: number): number {
  if (bucket < FINE_BUCKETS) return (bucket + 1) * FINE_STEP_MS;
  return FINE_LIMIT_MS + (bucket - FINE_BUCKETS + 1) * COARSE_STEP_MS;
}

/** Latency samples in milliseconds. */
export class LatencyHistogram {
  private counts = new Uint32Array(BUCKETS);
  count = 0;
  maxMs = 0;
  negative = 0;

  record(ms: number): void {
    if (ms < 0) {
      this.negative++;
      ms = 0;
    }
    this.counts[bucketOf(ms)]!++;
    this.count++;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.maxMs = 0;
    this.negative = 0;
  }

  /** Adds another histogram's serialised samples. */
  merge(data: HistogramData): void {
    for (const [bucket, n] of data.buckets) this.counts[bucket]! += n;
    this.count += data.count;
    this.negative += data.negative;
    if (data.maxMs > this.maxMs) this.maxMs = data.maxMs;
  }

  /** The value at quantile `q` (0..1), in ms (bucket upper edge; the exact max for q = 1); NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    if (q >= 1) return this.maxMs;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b]!;
      if (seen >= rank) return Math.min(upperEdgeMs(b), this.maxMs);
    }
    return this.maxMs;
  }

  toJSON(): HistogramData {
    const buckets: Array<[number, number]> = [];
    for (let b = 0; b < BUCKETS; b++) if (this.counts[b]! > 0) buckets.push([b, this.counts[b]!]);
    return { buckets, count: this.count, maxMs: this.maxMs, negative: this.negative };
  }
}
