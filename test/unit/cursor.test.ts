/** The multiplexed stream's cursor: round trip, size bound, and refusal of anything but a canonical cursor. */
import { describe, expect, it } from 'vitest';
import { canonicalOrder, CursorWriter, cursorKey, decodeCursor, encodeCursor, ENDED, maxCursorLength, MAX_CURSOR_VALUE } from '../../src/hub/cursor.ts';
import { BadRequestError } from '../../src/errors.ts';
import { mulberry32 } from '../../src/simulator/prng.ts';

const ids = (n: number) => canonicalOrder(Array.from({ length: n }, (_, i) => `session-${i}`));
const key = cursorKey('events', ids(3));

function refused(text: string, k = key, count = 3): string {
  try {
    decodeCursor(text, k, count);
  } catch (err) {
    expect(err).toBeInstanceOf(BadRequestError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(text)}`);
}

describe('cursor', () => {
  it('round-trips positions, ended sessions and the largest index', () => {
    for (const values of [[1, 1, 1], [ENDED, 5, 300], [MAX_CURSOR_VALUE, 128, 16_384], [ENDED, ENDED, ENDED]]) {
      const text = encodeCursor(key, values);
      expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeCursor(text, key, 3)).toEqual(values);
    }
  });

  it('is bound in size: 100 sessions fit in maxCursorLength(100) characters, typical ones in far less', () => {
    const key100 = cursorKey('events', ids(100));
    const worst = encodeCursor(key100, Array<number>(100).fill(MAX_CURSOR_VALUE));
    expect(worst.length).toBeLessThanOrEqual(maxCursorLength(100));
    expect(maxCursorLength(100)).toBe(1076);
    // Sessions below 16,383 events cost at most 2 bytes each.
    expect(encodeCursor(key100, Array<number>(100).fill(16_000)).length).toBe(Math.ceil(((7 + 200) * 4) / 3));
  });

  it('the writer updates in place and matches a fresh encoding, across varint widths', () => {
    const rand = mulberry32(7);
    const w = new CursorWriter(key, [1, 1, 1]);
    const values = [1, 1, 1];
    for (let i = 0; i < 2000; i++) {
      const slot = Math.floor(rand() * 3);
      const v = rand() < 0.05 ? ENDED : Math.floor(rand() ** 4 * 2 ** (1 + Math.floor(rand() * 52)));
      w.set(slot, v);
      values[slot] = v;
      expect(w.text()).toBe(encodeCursor(key, values));
    }
  });

  it('refuses another list, another mode, another count, and oversized text', () => {
    const text = encodeCursor(key, [1, 2, 3]);
    expect(refused(text, cursorKey('events', ids(4)))).toMatch(/another session list/);
    expect(refused(text, cursorKey('overview', ids(3)))).toMatch(/another session list or mode/);
    expect(refused(encodeCursor(key, [1, 2]))).toMatch(/2 positions; this stream has 3/);
    expect(refused(encodeCursor(key, [1, 2, 3, 4]))).toMatch(/more than the stream's 3/);
    expect(refused('A'.repeat(maxCursorLength(3) + 1))).toMatch(/longer than/);
  });

  it('refuses malformed text: other alphabets, padding, truncation, non-canonical numbers, values past 2^53', () => {
    const text = encodeCursor(key, [1, 200, 3]);
    for (const bad of ['', '=', `${text}=`, text.replace(/.$/, '+'), `${text} `, 'a/b', '%41', text.slice(0, -1), text.slice(0, 5)]) refused(bad);
    const raw = Buffer.from(text, 'base64url');
    // 200 as three bytes instead of two.
    const overlong = Buffer.concat([raw.subarray(0, 8), Buffer.from([0xc8, 0x81, 0x00]), raw.subarray(10)]);
    expect(refused(overlong.toString('base64url'))).toMatch(/non-canonical/);
    const huge = Buffer.concat([raw.subarray(0, 7), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), raw.subarray(8)]);
    expect(refused(huge.toString('base64url'))).toMatch(/beyond the largest index/);
    const nine = Buffer.concat([raw.subarray(0, 7), Buffer.from([0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x01]), raw.subarray(8)]);
    expect(refused(nine.toString('base64url'))).toMatch(/truncated or oversized/);
    const version = Buffer.from(raw);
    version[0] = 2;
    expect(refused(version.toString('base64url'))).toMatch(/unknown version/);
  });

  it('refuses every single bit flip of a valid cursor, or decodes it to other positions of the same list', () => {
    const text = encodeCursor(key, [1, 300, ENDED]);
    const raw = Buffer.from(text, 'base64url');
    for (let bit = 0; bit < raw.length * 8; bit++) {
      const flipped = Buffer.from(raw);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      try {
        const values = decodeCursor(flipped.toString('base64url'), key, 3);
        // Only a flip inside a position can survive, and then it reads as other positions.
        expect(bit).toBeGreaterThanOrEqual(7 * 8);
        expect(values).not.toEqual([1, 300, ENDED]);
      } catch (err) {
        expect(err).toBeInstanceOf(BadRequestError);
      }
    }
  });
});
