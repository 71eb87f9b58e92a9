import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Canvas } from '../../src/simulator/png.ts';
import { renderScreenshot } from '../../src/simulator/screenshot.ts';
import { parsePng } from './helpers.ts';

const PAGE = { url: 'https://flights.example.net/search?from=LIS&to=OSL', color: [26, 115, 232] as const };

describe('PNG encoding', () => {
  it('writes a valid truecolour PNG whose pixels decode as painted', () => {
    const canvas = new Canvas(7, 5, [255, 255, 255]);
    canvas.fill(1, 1, 3, 2, [10, 20, 30]);
    const png = canvas.toPng();
    const info = parsePng(png);
    expect(info).toEqual({ width: 7, height: 5, bitDepth: 8, colorType: 2, chunks: ['IHDR', 'IDAT', 'IEND'] });
    // One IDAT right after the 25-byte IHDR chunk; every row is filter byte 0 then RGB triples.
    const scanlines = inflateSync(png.subarray(8 + 25 + 8, png.length - 12 - 4));
    const pixel = (x: number, y: number) => [...scanlines.subarray(y * 22 + 1 + x * 3, y * 22 + 4 + x * 3)];
    expect(pixel(0, 0)).toEqual([255, 255, 255]);
    expect(pixel(1, 1)).toEqual([10, 20, 30]);
    expect(pixel(3, 2)).toEqual([10, 20, 30]);
    expect(pixel(4, 2)).toEqual([255, 255, 255]);
    expect(pixel(3, 3)).toEqual([255, 255, 255]);
  });

  it('clips rectangles to the canvas', () => {
    const canvas = new Canvas(4, 4, [0, 0, 0]);
    expect(() => canvas.fill(-10, -10, 100, 100, [1, 2, 3])).not.toThrow();
    expect(() => canvas.fill(10, 10, 5, 5, [1, 2, 3])).not.toThrow();
    expect(parsePng(canvas.toPng()).width).toBe(4);
  });
});

describe('renderScreenshot', () => {
  it.each([4_096, 20_000, 200_000, 1_000_000])('is a valid PNG of about %i base64 bytes', (target) => {
    const shot = renderScreenshot(PAGE, 7, target);
    const info = parsePng(Buffer.from(shot.base64, 'base64'));
    expect(info).toMatchObject({ width: shot.width, height: shot.height, bitDepth: 8, colorType: 2 });
    expect(shot.base64.length).toBeGreaterThan(target * 0.9);
    expect(shot.base64.length).toBeLessThan(target * 1.1);
  });

  it('never goes below the plain drawing, whatever the target', () => {
    const shot = renderScreenshot(PAGE, 7, 10);
    expect(parsePng(Buffer.from(shot.base64, 'base64')).width).toBe(320);
    expect(shot.base64.length).toBeLessThan(4_096);
  });

  it('is deterministic for a seed and differs between seeds', () => {
    expect(renderScreenshot(PAGE, 1, 8_000).base64).toBe(renderScreenshot(PAGE, 1, 8_000).base64);
    expect(renderScreenshot(PAGE, 2, 8_000).base64).not.toBe(renderScreenshot(PAGE, 1, 8_000).base64);
  });
});
