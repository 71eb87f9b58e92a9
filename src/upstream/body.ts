/**
 * An upstream answer's body as it was read: the chunks undici handed over,
 * in order, never joined into a copy. Each chunk is a view on one socket
 * read, in memory of that read's own size; an event's text (a screenshot's
 * ~100 KB) is kept as views on them, so an answer costs no second buffer
 * the size of the body. That buffer was memory outside the JS heap, which
 * V8 counts until its next collection; with little promoted it brought the
 * next full collection forward (bench/RESULTS.md, issue 21, thirteenth
 * round).
 */
import { isAscii, isUtf8 } from 'node:buffer';

const EMPTY: readonly Buffer[] = [];

export class Body {
  readonly chunks: readonly Buffer[];
  /** Bytes in the chunks together. */
  readonly length: number;
  /** Whether every byte is below 0x80, found when first asked: most answers (one chunk, small events) never ask. */
  private asciiKnown: boolean | null = null;
  /** Where each chunk starts in the body (bytes), found when first sliced. */
  private starts: number[] | null = null;
  private copy: Buffer | null = null;

  constructor(chunks: readonly Buffer[]) {
    this.chunks = chunks.length === 0 ? EMPTY : chunks;
    let length = 0;
    for (const c of chunks) length += c.length;
    this.length = length;
  }

  /** Every byte below 0x80: the UTF-8 text is then the Latin-1 one, one character per byte. */
  get ascii(): boolean {
    this.asciiKnown ??= this.chunks.every((c) => isAscii(c));
    return this.asciiKnown;
  }

  /** The body's UTF-8 decoding (an ASCII body's chunks are decoded one by one, not joined first). */
  text(): string {
    if (this.chunks.length === 1) return this.chunks[0]!.toString('utf8');
    if (this.ascii) return this.chunks.map((c) => c.toString('latin1')).join('');
    return this.joined().toString('utf8');
  }

  /** One character per byte (Latin-1): string offsets are byte offsets. For ASCII, the same string as `text()`. */
  latin1(): string {
    if (this.chunks.length === 1) return this.chunks[0]!.toString('latin1');
    return this.ascii ? this.text() : this.joined().toString('latin1');
  }

  /** Whether the bytes are UTF-8. */
  isUtf8(): boolean {
    return this.ascii || isUtf8(this.joined());
  }

  /** Views on bytes [start, end), in order, none copied (an empty list for an empty range). */
  slice(start: number, end: number): Buffer[] {
    const starts = this.chunkStarts();
    const parts: Buffer[] = [];
    let k = 0;
    while (k + 1 < starts.length && starts[k + 1]! <= start) k++;
    for (; k < this.chunks.length && starts[k]! < end; k++) {
      const from = Math.max(start - starts[k]!, 0);
      const to = Math.min(end - starts[k]!, this.chunks[k]!.length);
      if (to > from) parts.push(this.chunks[k]!.subarray(from, to));
    }
    return parts;
  }

  private chunkStarts(): number[] {
    if (this.starts === null) {
      let at = 0;
      this.starts = this.chunks.map((c) => ((at += c.length), at - c.length));
    }
    return this.starts;
  }

  /** The chunks as one buffer (a copy when there are several, made once): only for bodies that are not ASCII. */
  private joined(): Buffer {
    if (this.chunks.length === 1) return this.chunks[0]!;
    this.copy ??= Buffer.concat(this.chunks as Buffer[], this.length);
    return this.copy;
  }
}

/** The UTF-8 decoding of bytes held in parts (a character may lie across two). */
export function utf8Of(parts: readonly Buffer[]): string {
  return parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts as Buffer[]).toString('utf8');
}
