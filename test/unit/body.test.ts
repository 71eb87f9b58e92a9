/** An upstream body held in the chunks it was read in: decoded, checked and sliced without joining them. */
import { describe, expect, it } from 'vitest';
import { Body, utf8Of } from '../../src/upstream/body.ts';

/** A copy of `bytes` in memory of its own, as a socket read is (Buffer.alloc never slices the shared pool). */
function own(bytes: Buffer): Buffer {
  const c = Buffer.alloc(bytes.length);
  bytes.copy(c);
  return c;
}

/** `text`'s UTF-8 bytes in chunks cut at `cuts`, each in memory of its own. */
function body(text: string, cuts: number[]): Body {
  const bytes = Buffer.from(text, 'utf8');
  const at = [0, ...cuts, bytes.length];
  return new Body(at.slice(1).map((end, k) => own(bytes.subarray(at[k]!, end))));
}

describe('Body', () => {
  it('decodes an ASCII body chunk by chunk, and its Latin-1 text is the same string', () => {
    const b = body('{"a":"xyz","b":[1,2]}', [3, 9, 10]);
    expect(b.ascii).toBe(true);
    expect(b.length).toBe(21);
    expect(b.text()).toBe('{"a":"xyz","b":[1,2]}');
    expect(b.latin1()).toBe(b.text());
    expect(b.isUtf8()).toBe(true);
  });

  it('decodes a character cut across two chunks, and offsets of its Latin-1 text are byte offsets', () => {
    const text = '{"s":"é😀"}';
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const b = body(text, [cut]);
      expect(b.ascii).toBe(false);
      expect(b.text()).toBe(text);
      expect(b.latin1()).toBe(bytes.toString('latin1'));
      expect(b.isUtf8()).toBe(true);
      expect(utf8Of(b.slice(5, bytes.length - 1))).toBe('"é😀"');
    }
    expect(new Body([Buffer.from([0x22, 0xe9, 0x22])]).isUtf8()).toBe(false);
  });

  it('slices into views on the chunks it spans, none copied', () => {
    const b = body('0123456789', [4, 7]);
    const parts = b.slice(2, 9);
    expect(parts.map(String)).toEqual(['23', '456', '78']);
    // Each part lies in the memory of the chunk it came from: a view, not a copy.
    parts.forEach((p, k) => expect(p.buffer).toBe(b.chunks[k]!.buffer));
    expect(new Set(parts.map((p) => p.buffer)).size).toBe(3);
    expect(b.slice(4, 7).map(String)).toEqual(['456']);
    expect(b.slice(0, 10).map(String)).toEqual(['0123', '456', '789']);
    expect(b.slice(5, 5)).toEqual([]);
    const empty = new Body([]);
    expect(empty.length).toBe(0);
    expect(empty.text()).toBe('');
    expect(empty.slice(0, 0)).toEqual([]);
  });
});
