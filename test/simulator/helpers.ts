import { crc32, inflateSync } from 'node:zlib';
import type { Simulator, TrajectoryChanges } from '../../src/simulator/index.ts';

/** Upper bound of any single client wait in these tests. */
export const CLIENT_TIMEOUT_MS = 5_000;

/** Rejects if `promise` has not settled within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${label}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The changes URL of a session with the given query parameters. */
export function changesUrl(sim: Simulator, id: string, query: Record<string, string | number | boolean> = {}): string {
  const params = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
  const qs = params.toString();
  return `${sim.url}/sessions/${encodeURIComponent(id)}/changes${qs ? `?${qs}` : ''}`;
}

/** GET with a client-side timeout, so a broken server fails the test instead of hanging it. */
export function get(url: string, init: RequestInit = {}, timeoutMs = CLIENT_TIMEOUT_MS): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(timeoutMs), ...init });
}

/** GET a changes URL and parse the 200 body (asserting the status). */
export async function getChanges(url: string, init: RequestInit = {}): Promise<TrajectoryChanges> {
  const res = await get(url, init);
  if (res.status !== 200) throw new Error(`expected 200 from ${url}, got ${res.status}: ${await res.text()}`);
  return (await res.json()) as TrajectoryChanges;
}

/** POST JSON to the control API and return status and parsed body. */
export async function control(sim: Simulator, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await get(`${sim.url}/_sim/${path}`, {
    method,
    ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Tracks whether a promise settled yet, to prove a long-poll is still being held. */
export function track<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let settled = false;
  const tracked = promise.finally(() => {
    settled = true;
  });
  // Avoid an unhandled rejection if the test fails before awaiting it.
  tracked.catch(() => {});
  return { promise: tracked, settled: () => settled };
}

/** The header of a PNG file, after checking its signature, chunk CRCs and that IDAT inflates to the scanlines IHDR promises. */
export interface PngInfo {
  width: number;
  height: number;
  bitDepth: number;
  colorType: number;
  chunks: string[];
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Parses a PNG strictly enough to prove it is valid truecolour (throws otherwise). */
export function parsePng(bytes: Buffer): PngInfo {
  if (!bytes.subarray(0, 8).equals(PNG_MAGIC)) throw new Error('bad PNG signature');
  const chunks: string[] = [];
  const idat: Buffer[] = [];
  let header: Omit<PngInfo, 'chunks'> | undefined;
  for (let at = 8; at < bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (crc32(bytes.subarray(at + 4, at + 8 + length)) !== bytes.readUInt32BE(at + 8 + length)) throw new Error(`bad CRC in ${type}`);
    chunks.push(type);
    if (type === 'IHDR') header = { width: data.readUInt32BE(0), height: data.readUInt32BE(4), bitDepth: data[8]!, colorType: data[9]! };
    if (type === 'IDAT') idat.push(data);
    at += 12 + length;
  }
  if (!header || chunks[0] !== 'IHDR' || chunks.at(-1) !== 'IEND') throw new Error(`bad chunk order: ${chunks.join(',')}`);
  const scanlines = inflateSync(Buffer.concat(idat));
  const channels = header.colorType === 2 ? 3 : header.colorType === 6 ? 4 : 1;
  if (scanlines.length !== header.height * (1 + (header.width * channels * header.bitDepth) / 8)) throw new Error('IDAT does not match IHDR');
  return { ...header, chunks };
}
