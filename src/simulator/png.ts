import { crc32, deflateSync } from 'node:zlib';

/** An RGB colour, 0..255 per channel. */
export type Rgb = readonly [number, number, number];

/** The eight bytes every PNG starts with (PNG spec §5.2). */
export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Bytes per pixel of 8-bit truecolour (colour type 2). */
const RGB_BYTES = 3;
/** Random bytes per grained pixel: four random bits in each of its three channels. */
export const GRAIN_BYTES_PER_PX = 1.5;
/** IHDR colour type 2: truecolour without alpha. */
const COLOR_TYPE_RGB = 2;

/**
 * A truecolour image kept directly in PNG scanline layout (a filter byte, 0 =
 * None, before each row), so encoding is one deflate with no copy.
 */
export class Canvas {
  readonly width: number;
  readonly height: number;
  readonly #stride: number;
  readonly #scanlines: Buffer;

  constructor(width: number, height: number, background: Rgb) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new RangeError('canvas size must be positive integers');
    this.width = width;
    this.height = height;
    this.#stride = 1 + width * RGB_BYTES;
    this.#scanlines = Buffer.alloc(height * this.#stride);
    this.fill(0, 0, width, height, background);
  }

  /** Paints a rectangle, clipped to the canvas. */
  fill(x: number, y: number, w: number, h: number, [r, g, b]: Rgb): void {
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(this.width, Math.round(x + w));
    const y1 = Math.min(this.height, Math.round(y + h));
    if (x1 <= x0 || y1 <= y0) return;
    const first = y0 * this.#stride + 1 + x0 * RGB_BYTES;
    for (let i = first, end = first + (x1 - x0) * RGB_BYTES; i < end; i += RGB_BYTES) {
      this.#scanlines[i] = r;
      this.#scanlines[i + 1] = g;
      this.#scanlines[i + 2] = b;
    }
    // Rows of a rectangle are identical: paint one, copy it down.
    const row = this.#scanlines.subarray(first, first + (x1 - x0) * RGB_BYTES);
    for (let y = y0 + 1; y < y1; y++) row.copy(this.#scanlines, y * this.#stride + 1 + x0 * RGB_BYTES);
  }

  /**
   * Grains the first `count` pixels of a rectangle (in raster order): each
   * channel moves by -8..+7 from what was painted, four random bits of
   * `nextWord` (32 random bits a call) each. Incompressible on purpose (about
   * GRAIN_BYTES_PER_PX a pixel), it is how a screenshot reaches a requested
   * size, and it reads as film grain on the picture, not as a band of colour noise.
   */
  grain(x: number, y: number, w: number, h: number, count: number, nextWord: () => number): void {
    let left = Math.min(count, w * h);
    for (let row = y; row < y + h && left > 0; row++) {
      const n = Math.min(w, left);
      left -= n;
      const start = row * this.#stride + 1 + x * RGB_BYTES;
      for (let i = start, end = start + n * RGB_BYTES; i < end; i += 8) {
        const word = nextWord();
        for (let k = 0; k < 8 && i + k < end; k++) {
          // Centred on the painted value, so the picture keeps its colours (no tint where the grain is).
          const v = this.#scanlines[i + k]! + ((word >>> (4 * k)) & 0x0f) - 8;
          this.#scanlines[i + k] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
      }
    }
  }

  /** The image as a complete PNG file: signature, IHDR, one IDAT, IEND. */
  toPng(): Buffer {
    const header = Buffer.alloc(13);
    header.writeUInt32BE(this.width, 0);
    header.writeUInt32BE(this.height, 4);
    header[8] = 8; // bit depth
    header[9] = COLOR_TYPE_RGB;
    // bytes 10..12: compression 0 (deflate), filter method 0, no interlace
    return Buffer.concat([PNG_SIGNATURE, chunk('IHDR', header), chunk('IDAT', deflateSync(this.#scanlines)), chunk('IEND', Buffer.alloc(0))]);
  }
}

/** One PNG chunk: length, type, data, CRC-32 of type and data. */
function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}
