/**
 * Seeded fuzzing of the multiplexed stream's Last-Event-ID over real
 * sockets: random strings, truncations, bit flips, huge positions, cursors of
 * other lists and counts. Every one is a 400 JSON answer (or, for a flip that
 * still spells a cursor of this list, a stream); never a 5xx, and the server
 * keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cursorKey, canonicalOrder, encodeCursor, maxCursorLength } from '../../src/hub/cursor.ts';
import { mulberry32 } from '../../src/simulator/prng.ts';
import { eventually, startBridge, type Bridge } from '../helpers/harness.ts';
import { parseSse, readAll } from '../helpers/multi.ts';
import { rawRequest } from './helpers.ts';

/** The seed of every run; a failure names it, and the same seed replays the same cursors. */
const SEED = 0xc0_5e_ed;
const CASES = 800;
const CONCURRENCY = 16;
const IDS = ['cf-1', 'cf-2', 'cf-3'];

const rand = mulberry32(SEED);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const PRINTABLE = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join('');

let bridge: Bridge;
let valid: string[] = [];
beforeAll(async () => {
  bridge = await startBridge({ RATE_LIMIT_PER_IP: '0' });
  bridge.sim.createSession('cf-1', { initialEvents: 200, finished: true });
  bridge.sim.createSession('cf-2', { initialEvents: 3, finished: true });
  bridge.sim.createSession('cf-3', { initialEvents: 1, finished: true });
  // Real cursors, as the stream hands them out.
  const frames = parseSse(await readAll(await fetch(`${bridge.url}/events?sessions=${IDS.join(',')}`)));
  valid = frames.flatMap((f) => (f.id ? [f.id] : []));
});
afterAll(() => bridge?.close());

function varint(value: bigint): number[] {
  const out: number[] = [];
  while (value >= 128n) {
    out.push(Number(value % 128n) | 0x80);
    value /= 128n;
  }
  out.push(Number(value));
  return out;
}

/** One hostile Last-Event-ID, and what it is. */
function mutant(): [string, string] {
  const base = pick(valid);
  const raw = Buffer.from(base, 'base64url');
  switch (int(8)) {
    case 0: {
      const len = 1 + int(60);
      return ['random base64url', Array.from({ length: len }, () => pick(B64.split(''))).join('')];
    }
    case 1: {
      const len = 1 + int(80);
      return ['random printable', Array.from({ length: len }, () => pick(PRINTABLE.split(''))).join('').trim() || 'x'];
    }
    case 2:
      return ['truncated', base.slice(0, int(base.length)) || 'A'];
    case 3: {
      const flipped = Buffer.from(raw);
      const bit = int(flipped.length * 8);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      return ['bit flip', flipped.toString('base64url')];
    }
    case 4: {
      const huge = [1n << 53n, 1n << 56n, (1n << 64n) - 1n, BigInt(Number.MAX_SAFE_INTEGER) + 1n][int(4)]!;
      return ['huge position', Buffer.from([...raw.subarray(0, 7), ...varint(huge), ...varint(1n), ...varint(1n)]).toString('base64url')];
    }
    case 5: {
      const count = pick([0, 1, 2, 4, 5, 50]);
      return ['wrong count', encodeCursor(cursorKey('events', canonicalOrder(IDS)), Array.from({ length: count }, () => 1 + int(10)))];
    }
    case 6: {
      const other = pick([['cf-1', 'cf-2'], ['cf-1', 'cf-2', 'cf-4'], [...IDS, 'cf-9']]);
      return ['other list or mode', encodeCursor(cursorKey(pick(['events', 'overview']), canonicalOrder(other)), other.map(() => 1))];
    }
    default:
      return ['oversized', base + 'A'.repeat(maxCursorLength(IDS.length) + int(2000))];
  }
}

describe('multiplexed stream cursor fuzzing', () => {
  it(`answers ${CASES} hostile Last-Event-IDs with 400 (never a 5xx), seed ${SEED}`, async () => {
    expect(valid.length).toBeGreaterThan(200);
    const cases = Array.from({ length: CASES }, mutant);
    const outcomes = new Map<string, number>();
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const [what, cursor] = cases[next++]!;
        const res = await fetch(`${bridge.url}/events?sessions=${IDS.join(',')}`, { headers: { 'last-event-id': cursor } });
        outcomes.set(`${what} ${res.status}`, (outcomes.get(`${what} ${res.status}`) ?? 0) + 1);
        expect(res.status, `${what}: ${cursor.slice(0, 80)} (seed ${SEED})`).toBeLessThan(500);
        if (res.status === 200) {
          // Only a flip inside a position may still spell a cursor of this list.
          expect(what).toBe('bit flip');
          await res.body?.cancel();
          continue;
        }
        if (res.status === 204) continue;
        expect(res.status, `${what}: ${cursor.slice(0, 80)}`).toBe(400);
        expect(((await res.json()) as { code: string }).code).toBe('bad_request');
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    console.log(`[cursor-fuzz] seed ${SEED}: ${[...outcomes].map(([k, n]) => `${k}×${n}`).join(', ')}`);
    // Control characters never reach the route: Node's parser refuses them as a malformed request.
    for (const bad of ['\x00', '\x7f', 'AQ\x01']) {
      const answer = await rawRequest(bridge.url, `GET /events?sessions=cf-1 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: ${bad}\r\nConnection: close\r\n\r\n`);
      expect(answer.status).toBeLessThan(500);
    }
    expect((await fetch(`${bridge.url}/healthz`)).status).toBe(200);
    await eventually(() => bridge.server.streams.size === 0, 10_000, 'every fuzz stream closed');
    // A valid cursor still resumes after all that.
    const res = await fetch(`${bridge.url}/events?sessions=${IDS.join(',')}`, { headers: { 'last-event-id': valid[100]! } });
    expect(res.status).toBe(200);
    const rest = parseSse(await readAll(res)).filter((f) => f.event === undefined && f.data);
    expect(rest.length).toBe(204 - 101);
  });
});
