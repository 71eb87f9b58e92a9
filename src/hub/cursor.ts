/**
 * The resume cursor of a multiplexed stream: the SSE `id` of its frames,
 * holding the position of every session of the stream, so the
 * `Last-Event-ID` a browser sends on reconnect resumes each one exactly.
 *
 * Text form: base64url (no padding) of
 *   `0x01` (version) | 6-byte list key | one unsigned LEB128 varint per session
 * in the stream's canonical order (ids sorted by code unit). A session's
 * varint is 0 once its `end` was delivered, else the index of the next event
 * it needs plus one. The list key is the first 6 bytes of SHA-256 over the
 * mode and the sorted ids, so a cursor for another list or mode is refused.
 * Pure; decoding throws BadRequestError (400) on anything but a canonical cursor.
 */
import { createHash } from 'node:crypto';
import { BadRequestError } from '../errors.ts';

/** First byte of every cursor; bumped if the layout ever changes. */
export const CURSOR_VERSION = 1;
/** Bytes of the session-list key. */
export const CURSOR_KEY_BYTES = 6;
/** Bytes before the positions: version and key. */
const HEADER_BYTES = 1 + CURSOR_KEY_BYTES;
/** Longest varint: 8 bytes carry 56 bits, enough for any safe integer. */
const MAX_VARINT_BYTES = 8;
/** Largest position value (index + 1) a cursor may hold. */
export const MAX_CURSOR_VALUE = Number.MAX_SAFE_INTEGER;
/** Cursor value of a session whose `end` was delivered. */
export const ENDED = 0;

/** The canonical order of a stream's sessions: sorted by code unit (ids are ASCII). */
export function canonicalOrder(ids: readonly string[]): string[] {
  return [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The list key of a stream: its mode and its sessions in canonical order. */
export function cursorKey(mode: string, sortedIds: readonly string[]): Buffer {
  return createHash('sha256').update(`${mode}\n${sortedIds.join('\n')}`).digest().subarray(0, CURSOR_KEY_BYTES);
}

/** Longest cursor text for `sessions` sessions (characters): the size bound Last-Event-ID is checked against. */
export function maxCursorLength(sessions: number): number {
  return Math.ceil(((HEADER_BYTES + MAX_VARINT_BYTES * sessions) * 4) / 3);
}

function varintLength(value: number): number {
  let n = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

// Division, not bit shifts: positions go past 2^31.
function writeVarint(into: Buffer, at: number, value: number): number {
  while (value >= 128) {
    into[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  into[at++] = value;
  return at;
}

/** Encodes positions as cursor text (the inverse of `decodeCursor`). */
export function encodeCursor(key: Buffer, values: readonly number[]): string {
  return new CursorWriter(key, values).text();
}

/**
 * Reads cursor text for a stream of `count` sessions with list key `key`;
 * throws BadRequestError when it is not exactly such a cursor (malformed,
 * oversized, another version, another session list or mode, another count,
 * a non-canonical or oversized number).
 */
export function decodeCursor(text: string, key: Buffer, count: number): number[] {
  if (text.length > maxCursorLength(count)) throw new BadRequestError(`Last-Event-ID is longer than a cursor for ${count} sessions can be`);
  // Buffer.from(…, 'base64url') skips what it cannot read: check the alphabet first,
  // and the round trip below refuses padding bits that are not zero.
  if (!/^[A-Za-z0-9_-]+$/.test(text) || text.length % 4 === 1) throw new BadRequestError('Last-Event-ID is not a cursor of this stream (not base64url)');
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw new BadRequestError('Last-Event-ID is not a cursor of this stream (not canonical base64url)');
  if (bytes.length < HEADER_BYTES || bytes[0] !== CURSOR_VERSION) throw new BadRequestError('Last-Event-ID is not a cursor of this stream (unknown version)');
  if (!bytes.subarray(1, HEADER_BYTES).equals(key)) throw new BadRequestError('Last-Event-ID is a cursor for another session list or mode');
  const values: number[] = [];
  let at = HEADER_BYTES;
  while (at < bytes.length) {
    if (values.length === count) throw new BadRequestError(`Last-Event-ID holds more than the stream's ${count} positions`);
    let value = 0;
    let scale = 1;
    for (let k = 0; ; k++) {
      if (k === MAX_VARINT_BYTES || at === bytes.length) throw new BadRequestError('Last-Event-ID holds a truncated or oversized position');
      const b = bytes[at++]!;
      value += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) {
        // A zero last byte after others is a longer spelling of a smaller number: not canonical.
        if (b === 0 && k > 0) throw new BadRequestError('Last-Event-ID holds a non-canonical position');
        break;
      }
    }
    if (value > MAX_CURSOR_VALUE) throw new BadRequestError('Last-Event-ID holds a position beyond the largest index');
    values.push(value);
  }
  if (values.length !== count) throw new BadRequestError(`Last-Event-ID holds ${values.length} positions; this stream has ${count} sessions`);
  return values;
}

/**
 * The cursor of one open stream, updated in place as frames go out: a frame
 * changes one session's position, so the bytes are rewritten at that slot
 * and only rebuilt when the varint's width changes (every 7 bits).
 */
export class CursorWriter {
  private readonly values: number[];
  private readonly starts: number[];
  private readonly widths: number[];
  private readonly bytes: Buffer;
  private length = 0;

  constructor(key: Buffer, values: readonly number[]) {
    this.values = [...values];
    this.starts = new Array<number>(values.length).fill(0);
    this.widths = new Array<number>(values.length).fill(0);
    this.bytes = Buffer.alloc(HEADER_BYTES + MAX_VARINT_BYTES * values.length);
    this.bytes[0] = CURSOR_VERSION;
    key.copy(this.bytes, 1);
    this.rebuild();
  }

  /** The value at `slot`. */
  get(slot: number): number {
    return this.values[slot]!;
  }

  /** Sets the value at `slot` (ENDED, or next index + 1). */
  set(slot: number, value: number): void {
    this.values[slot] = value;
    if (varintLength(value) === this.widths[slot]) writeVarint(this.bytes, this.starts[slot]!, value);
    else this.rebuild();
  }

  /** The cursor text now. */
  text(): string {
    return this.bytes.toString('base64url', 0, this.length);
  }

  private rebuild(): void {
    let at = HEADER_BYTES;
    for (let i = 0; i < this.values.length; i++) {
      this.starts[i] = at;
      at = writeVarint(this.bytes, at, this.values[i]!);
      this.widths[i] = at - this.starts[i]!;
    }
    this.length = at;
  }
}
