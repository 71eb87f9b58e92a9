import { Canvas, GRAIN_BYTES_PER_PX } from './png.ts';
import type { Rgb } from './png.ts';
import { mulberry32 } from './prng.ts';

/** What the simulated page looks like: its address and brand colour. */
export interface PageLook {
  readonly url: string;
  readonly color: Rgb;
}

/** A rendered screenshot: base64 of a PNG file, and its size in pixels. */
export interface Screenshot {
  readonly base64: string;
  readonly width: number;
  readonly height: number;
}

/** Canvas widths tried in order until the photo area can hold the grain a size asks for, in pixels. */
const WIDTHS_PX = [320, 480, 640, 800, 1024, 1280, 1600, 2048] as const;
/** Height over width (16:10, a laptop browser window). */
const ASPECT = 10 / 16;
/** Bytes of incompressible pixel data per grained pixel. */
const NOISE_BYTES_PER_PX = GRAIN_BYTES_PER_PX;
/** Corrective redraws at most, for a size off by more than SIZE_TOLERANCE. */
const SIZE_CORRECTIONS = 4;
/** A size off by more than this share of the target gets a corrective redraw. */
const SIZE_TOLERANCE = 0.05;
/** Seed mixed into the noise generator, so the photo does not repeat the layout draws. */
const NOISE_SEED_SALT = 0x9e3779b9;

const WHITE: Rgb = [255, 255, 255];
const TAB_STRIP: Rgb = [223, 225, 229];
const BORDER: Rgb = [218, 220, 224];
const ICON: Rgb = [154, 160, 166];
const ADDRESS_BAR: Rgb = [241, 243, 244];
const LOCK: Rgb = [24, 128, 56];
const TEXT_DARK: Rgb = [60, 64, 67];
const TEXT_LIGHT: Rgb = [196, 199, 197];
const CURSOR: Rgb = [20, 20, 20];

function lighten([r, g, b]: Rgb): Rgb {
  return [r + (255 - r) * 0.6, g + (255 - g) * 0.6, b + (255 - b) * 0.6].map(Math.round) as unknown as Rgb;
}

interface Layout {
  readonly width: number;
  readonly height: number;
  /** Scale unit: one pixel of the 320-wide design. */
  readonly u: number;
  readonly pageTop: number;
  readonly photo: { x: number; y: number; w: number; h: number };
}

function layoutFor(width: number): Layout {
  const height = Math.round(width * ASPECT);
  const u = width / WIDTHS_PX[0];
  const pageTop = Math.round(height * 0.07) + Math.round(height * 0.08);
  const contentTop = pageTop + Math.round(height * 0.09) + Math.round(8 * u);
  const photo = { x: Math.round(width * 0.52), y: contentTop, w: Math.round(width * 0.44), h: height - contentTop - Math.round(8 * u) };
  return { width, height, u, pageTop, photo };
}

/** A landscape in the page's colours: a sky fading down to the horizon, a sun, and hills. */
function drawPhoto(c: Canvas, photo: Layout['photo'], color: Rgb, rng: () => number): void {
  const sky = lighten(color);
  const horizon = Math.round(photo.h * (0.55 + rng() * 0.15));
  for (let row = 0; row < horizon; row++) {
    const t = row / Math.max(1, horizon);
    c.fill(photo.x, photo.y + row, photo.w, 1, mix(sky, WHITE, 0.5 + t * 0.4));
  }
  const sun = Math.max(2, Math.round(photo.w * 0.08));
  c.fill(photo.x + photo.w * (0.15 + rng() * 0.6), photo.y + horizon * 0.25, sun, sun, [255, 214, 102]);
  for (let row = horizon; row < photo.h; row++) {
    const t = (row - horizon) / Math.max(1, photo.h - horizon);
    c.fill(photo.x, photo.y + row, photo.w, 1, mix(color, [40, 60, 45], 0.3 + t * 0.5));
  }
}

function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [0, 1, 2].map((i) => Math.round(a[i]! + (b[i]! - a[i]!) * t)) as unknown as Rgb;
}

/** Browser chrome, a branded page with text, a button, a photo (partly noise) and the mouse cursor. */
function draw(layout: Layout, page: PageLook, seed: number, noisePixels: number): Buffer {
  const { width, height, u, pageTop, photo } = layout;
  const rng = mulberry32(seed);
  const noiseRng = mulberry32(seed ^ NOISE_SEED_SALT);
  const c = new Canvas(width, height, WHITE);
  const tabH = Math.round(height * 0.07);
  const toolH = pageTop - tabH;

  c.fill(0, 0, width, tabH, TAB_STRIP);
  c.fill(6 * u, 3 * u, width * 0.28, tabH - 3 * u, WHITE);
  c.fill(10 * u, tabH / 2 - 1 * u, 5 * u, 5 * u, page.color);
  c.fill(18 * u, tabH / 2 + 1 * u, width * 0.16, 2 * u, TEXT_DARK);
  c.fill(width * 0.33, tabH / 2 + 1 * u, width * 0.12, 2 * u, ICON);

  c.fill(0, pageTop - 1, width, 1, BORDER);
  for (let i = 0; i < 3; i++) c.fill((6 + i * 9) * u, tabH + toolH / 2 - 2.5 * u, 5 * u, 5 * u, ICON);
  const barX = 36 * u;
  c.fill(barX, tabH + toolH * 0.18, width - barX - 10 * u, toolH * 0.64, ADDRESS_BAR);
  c.fill(barX + 4 * u, tabH + toolH / 2 - 2 * u, 4 * u, 4 * u, LOCK);
  c.fill(barX + 11 * u, tabH + toolH / 2 - 1 * u, Math.min(width * 0.5, page.url.length * 2.2 * u), 2 * u, TEXT_DARK);

  const headH = Math.round(height * 0.09);
  c.fill(0, pageTop, width, headH, page.color);
  c.fill(8 * u, pageTop + headH * 0.3, 30 * u, headH * 0.4, WHITE);
  for (let i = 0; i < 4; i++) c.fill(width * (0.45 + i * 0.13), pageTop + headH / 2 - 1 * u, width * 0.08, 2 * u, lighten(page.color));

  const left = 10 * u;
  let y = photo.y;
  c.fill(left, y, width * (0.22 + rng() * 0.15), 5 * u, TEXT_DARK);
  y += 10 * u;
  while (y < height - 24 * u) {
    c.fill(left, y, width * (0.25 + rng() * 0.17), 2 * u, TEXT_LIGHT);
    y += (rng() < 0.15 ? 9 : 5) * u;
  }
  c.fill(left, height - 16 * u, 28 * u, 9 * u, page.color);

  drawPhoto(c, photo, page.color, rng);
  c.grain(photo.x, photo.y, photo.w, photo.h, noisePixels, () => (noiseRng() * 2 ** 32) >>> 0);

  const cursorX = width * (0.1 + rng() * 0.8);
  const cursorY = pageTop + rng() * (height - pageTop - 14 * u);
  for (let k = 0; k < 12 * u; k++) c.fill(cursorX, cursorY + k, Math.max(1, k * 0.6), 1, CURSOR);
  return c.toPng();
}

/**
 * A deterministic browser-like screenshot whose base64 is about `targetBase64Bytes`
 * long: the smallest canvas whose photo area can carry the incompressible noise
 * that tops the drawing up to the size (within a few per cent, or the drawing
 * alone when that is already bigger).
 */
export function renderScreenshot(page: PageLook, seed: number, targetBase64Bytes: number): Screenshot {
  const targetPngBytes = Math.floor((targetBase64Bytes * 3) / 4);
  const noiseFor = (png: Buffer): number => Math.ceil((targetPngBytes - png.length) / NOISE_BYTES_PER_PX);
  let layout = layoutFor(WIDTHS_PX[0]);
  let png = draw(layout, page, seed, 0);
  for (const width of WIDTHS_PX.slice(1)) {
    if (noiseFor(png) <= layout.photo.w * layout.photo.h) break;
    layout = layoutFor(width);
    png = draw(layout, page, seed, 0);
  }
  const plainBytes = png.length;
  let noise = noiseFor(png);
  if (noise > 0) {
    png = draw(layout, page, seed, noise);
    // Deflate squeezes the grain somewhat below its nominal bytes: measure what a grained pixel really
    // cost and redraw with the grain that rate asks for, a few times (each pass closes most of the gap).
    for (let pass = 0; pass < SIZE_CORRECTIONS && Math.abs(targetPngBytes - png.length) > targetPngBytes * SIZE_TOLERANCE; pass++) {
      const bytesPerPixel = Math.max(0.1, (png.length - plainBytes) / noise);
      noise = Math.min(layout.photo.w * layout.photo.h, Math.max(0, Math.ceil((targetPngBytes - plainBytes) / bytesPerPixel)));
      png = draw(layout, page, seed, noise);
    }
  }
  return { base64: png.toString('base64'), width: layout.width, height: layout.height };
}
