/**
 * When bytes made of several buffers are copied into one before a write, and
 * when they are written as they are: one rule for every writer and for the
 * HTTP/1.1 framing of shared chunks. Small parts are copied once (one write
 * of one buffer is far cheaper than a write call per part, above all per
 * subscriber); a part as big as a screenshot is never copied, and the parts
 * go out corked into one writev instead.
 */

/** A part this big or bigger is not copied to be joined with others. */
export const COPY_BELOW_BYTES = 16 * 1024;

/** True when one of `parts` is too big to copy: write them as they are, corked. */
export function hasBigPart(parts: readonly Buffer[]): boolean {
  for (const p of parts) if (p.length >= COPY_BELOW_BYTES) return true;
  return false;
}

/** Bytes in `parts` together. */
export function totalLength(parts: readonly Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/** What a corked write goes through: a socket or a response. */
interface Corkable {
  cork(): void;
  write(chunk: Buffer): unknown;
  uncork(): void;
}

/** Writes `parts` back to back, corked into one writev. */
export function writeCorked(out: Corkable, parts: readonly Buffer[]): void {
  out.cork();
  for (const p of parts) out.write(p);
  out.uncork();
}

/**
 * `parts` with every run of small neighbours joined into one buffer (big
 * parts as they are): what a shared chunk is written as, built once so that
 * each subscriber's writev has as few parts as the big ones allow.
 */
export function coalesce(parts: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let run: Buffer[] = [];
  const flush = () => {
    if (run.length > 0) out.push(run.length === 1 ? run[0]! : Buffer.concat(run));
    run = [];
  };
  for (const p of parts) {
    if (p.length >= COPY_BELOW_BYTES) {
      flush();
      out.push(p);
    } else run.push(p);
  }
  flush();
  return out;
}
