/**
 * Seeded fuzzing over real sockets: thousands of random paths, ids, indices,
 * query values and header values thrown at a running bridge. Nothing may be
 * answered with a 5xx, the server must keep answering /healthz, nothing
 * invalid may reach the upstream, and the heap must return near its baseline.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_ID_PATTERN } from '../../src/http/validate.ts';
import { eventually, startBridge, type Bridge } from '../helpers/harness.ts';
import { JWT_SECRET, rawRequest, token } from './helpers.ts';
import { mulberry32 } from '../../src/simulator/prng.ts';

/** The seed of every run; a failure names it, and the same seed replays the same requests. */
const SEED = 0x5eed_c0de;
/** Requests per batch. */
const INVALID_BATCH = 1500;
const MIXED_BATCH = 1500;
const RAW_BATCH = 250;
/** Requests in flight at once. */
const CONCURRENCY = 16;
/**
 * Heap growth allowed after a full GC, relative to the baseline taken after a
 * warm-up batch (bytes). Generous (about 2.5 MB was measured): the bridge, the
 * simulator (which counts every id it was asked about) and the test share one
 * process, and the hub legitimately caches the sessions it read. Over the
 * ~3,450 requests, a leak of 5 KB or more per request would exceed it.
 */
const HEAP_GROWTH_BOUND_BYTES = 16 * 1024 * 1024;


const rand = mulberry32(SEED);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
const chance = (p: number) => rand() < p;
const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-';

/** Existing sessions of the simulator. */
const LIVE = ['fz-live-1', 'fz-live-2'];
const DONE = ['fz-done-1', 'fz-done-2'];

function validId(): string {
  if (chance(0.5)) return pick([...LIVE, ...DONE]);
  const len = 1 + (chance(0.9) ? int(24) : int(128));
  let id = pick(ID_CHARS.slice(0, 62).split(''));
  while (id.length < len) id += pick(ID_CHARS.split(''));
  return id;
}

/**
 * Ids the contract refuses, as they go into a URL path (already encoded where a raw byte would not survive fetch).
 * No lone '.': fetch drops that segment, and `/sessions/./events` becomes `/sessions/events`, the (valid) session
 * list stream; dot segments as sent are covered by the raw request lines below.
 */
function invalidIdInPath(): string {
  const fixed = [
    '', '..', '...', '-a', '_a', '.a', ':a', 'a%2Fb', '%2e%2e', '%2E%2E%2F%2E%2E', 'a%20b', 'a%00b', '%', '%zz', '%E0%A4%A', '%C0%AE%C0%AE',
    encodeURIComponent('ü'), encodeURIComponent('日本語'), encodeURIComponent('🙂'), encodeURIComponent('a b'), encodeURIComponent('a\nb'), encodeURIComponent('<script>'),
    encodeURIComponent("a'b"), encodeURIComponent('a"b'), 'a%3Fb', 'a%23b', 'a;b', 'a,b', 'a~b', 'a!b', 'a*b', 'a+b', 'a@b', 'a=b', 'a$b',
    'a'.repeat(129), 'b'.repeat(int(4000) + 129), `${'c'.repeat(127)}%2F`,
  ];
  if (chance(0.7)) return pick(fixed);
  // A valid prefix with one bad character somewhere.
  const bad = pick(['%2F', '%20', '%25', '~', '!', '%C3%A9', '%F0%9F%99%82', '%0A', '%09', '+', '@', '*', "'"]);
  const base = validId();
  const at = int(base.length + 1);
  return at === 0 ? `-${bad}${base}` : `${base.slice(0, at)}${bad}${base.slice(at)}`;
}

const INVALID_INDEX = ['-1', '-0.5', '1.5', '0x10', '0X1F', '1e3', 'NaN', 'Infinity', '-Infinity', 'abc', '99999999999999999', '9007199254740993', '+1', '%D9%A1%D9%A2', '1%00', '1;2', '1,2', '0.0', '١'];
const VALID_INDEX = ['0', '1', '2', '7', '00', '100', '9007199254740991'];
// Not a boolean in the upstream's (pydantic's) spellings either ('yes', 'no', 'TRUE', 'off' are).
const INVALID_DETAILS = ['maybe', 'nope', 'truee', 'yes!', '2', '-1', 'null', '%00'];
const INVALID_LIMIT = ['0', '-3', '1.5', 'ten', '1e2'];
// Any number of digits is a wait the upstream caps (1.2345 included); these are not numbers.
const INVALID_WAIT = ['-1', 'abc', '1e3', '0x5', '1.2.3', 'Infinity'];

/** One request: path+query and headers, and whether it is invalid whatever the upstream holds. */
interface FuzzRequest {
  target: string;
  headers: Record<string, string>;
}

let goodToken = '';
let otherToken = '';

function garbageAuth(): string {
  return pick([
    'Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `Bearer ${'x'.repeat(9000)}`, 'Bearer a.b.c', 'Bearer eyJhbGciOiJub25lIn0.eyJzZXNzaW9ucyI6WyIqIl19.',
    `Bearer ${goodToken.slice(0, -2)}xx`, 'bearer     ', 'Token abc', 'Bearer \u00ff\u00fe', `Bearer ${goodToken}.extra`,
  ]);
}

function query(parts: Array<[string, string]>): string {
  return parts.length === 0 ? '' : `?${parts.map(([k, v]) => `${k}=${v}`).join('&')}`;
}

/** A request that must be refused before any upstream call. */
function invalidRequest(): FuzzRequest {
  const route = pick(['events', 'changes']);
  const headers: Record<string, string> = {};
  const q: Array<[string, string]> = [];
  const how = int(6);
  let id = validId();
  if (how === 0) id = invalidIdInPath();
  else if (how === 1) q.push(['from_index', pick(INVALID_INDEX)]);
  else if (how === 2) q.push([pick(['include_details']), pick(INVALID_DETAILS)]);
  else if (how === 3 && route === 'changes') q.push(chance(0.5) ? ['limit', pick(INVALID_LIMIT)] : ['wait_for_seconds', pick(INVALID_WAIT)]);
  // Header values must be bytes (fetch refuses anything else): the non-latin1 entries stay in queries.
  else if (how === 3) headers['last-event-id'] = pick([...INVALID_INDEX.filter((v) => /^[\x20-\xff]*$/.test(v)), 'null', 'undefined', '1 2', '\u00ff\u00fe']);
  else if (how === 4) headers.authorization = garbageAuth();
  else {
    // No token at all, or one for other sessions (403).
    if (chance(0.5)) q.push(['access_token', otherToken]);
  }
  if (how !== 4 && how !== 5) {
    if (chance(0.5)) headers.authorization = `Bearer ${goodToken}`;
    else q.push(['access_token', goodToken]);
  }
  if (chance(0.3)) q.push([pick(['x', 'session', 'foo%00', '%zz', 'a[]']), pick(['1', '%', '%00', 'é', ''])]);
  return { target: `/sessions/${id}/${route}${query(q)}`, headers };
}

/** Any request at all, valid or not, to any path. */
function mixedRequest(): FuzzRequest {
  if (chance(0.15)) {
    const target = pick([
      '/', '/healthz', '/metrics', '/sessions', '/sessions/', `/sessions/${validId()}`, `/sessions/${validId()}/events/extra`, `/sessions//events`,
      `/events?session=${validId()}&session=${invalidIdInPath()}`, `/events?sessions=${validId()},${validId()}`, '/%2e%2e/%2e%2e/etc/passwd', `/${'z'.repeat(int(3000))}`,
      '/demo/sessions', '/pollcast-client.js', '/sessions/events?status=bogus', `/sessions/events?search=${invalidIdInPath()}`,
      `/v1/stream/sessions/${validId()}?offset=zz`, `/v1/stream/sessions/${invalidIdInPath()}`, '/readyz',
    ]);
    return { target, headers: chance(0.5) ? { authorization: `Bearer ${goodToken}` } : {} };
  }
  if (chance(0.5)) return invalidRequest();
  const route = pick(['events', 'changes']);
  const q: Array<[string, string]> = [];
  const headers: Record<string, string> = chance(0.5) ? { authorization: `Bearer ${goodToken}` } : {};
  if (!headers.authorization) q.push(['access_token', goodToken]);
  if (chance(0.5)) q.push(['from_index', pick(VALID_INDEX)]);
  if (chance(0.3)) q.push(['include_details', pick(['true', 'false', '1', '0'])]);
  if (route === 'changes' && chance(0.3)) q.push(['limit', pick(['1', '5', '1000', '999999'])]);
  if (route === 'changes') q.push(['wait_for_seconds', '0']);
  if (route === 'events' && chance(0.3)) headers['last-event-id'] = pick(VALID_INDEX);
  return { target: `/sessions/${validId()}/${route}${query(q)}`, headers };
}

/** Raw request lines fetch would refuse or normalise: dot segments, raw bytes, bad versions. */
function rawLine(): string {
  const target = pick([
    '/sessions/../../etc/passwd/events', '/sessions/./x/events', `/sessions/${'\u00e9'}/events`, '/sessions/a b/events', '/sessions/a\tb/events', '*', 'http://evil.example/sessions/a/events',
    `/sessions/${invalidIdInPath()}/changes`, '/sessions/%/events', `/sessions/x/events?from_index=${pick(INVALID_INDEX)}`, '//sessions//x//events', '/\\sessions\\x\\events',
  ]);
  const version = pick(['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9', '']);
  const header = pick(['', 'Last-Event-ID: \u0000\r\n', `Authorization: ${garbageAuth()}\r\n`, 'X-Bad Header: 1\r\n', 'Content-Length: -1\r\n', 'Transfer-Encoding: chunked\r\n']);
  return `GET ${target} ${version}\r\nHost: x\r\n${header}Connection: close\r\n\r\n`;
}

async function send(base: string, r: FuzzRequest): Promise<number> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 10_000);
  try {
    const res = await fetch(`${base}${r.target}`, { headers: r.headers, signal: abort.signal });
    // Streams are left at once; everything else is read to the end.
    if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) await res.body?.cancel();
    else await res.arrayBuffer();
    return res.status;
  } finally {
    clearTimeout(timer);
  }
}

async function runBatch<T>(items: T[], run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < items.length) await run(items[next++]!);
  }));
}

function forceGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

async function settledHeap(gc: () => void): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

let bridge: Bridge;
const gc = forceGc();

/** Requests the simulator counted per session id (a cancelled long-poll settling later is not a request). */
function requestCounts(): Record<string, [number, number]> {
  return Object.fromEntries(Object.entries(bridge.sim.allStats()).map(([id, s]) => [id, [s.status, s.changes]]));
}

/** Waits until no stream is open and no upstream loop runs, so the upstream sees nothing on its own. */
function quiet(): Promise<void> {
  return eventually(() => bridge.server.streams.size === 0 && bridge.server.hub.activeCount === 0, 10_000, 'no stream and no loop');
}
let baseline = 0;

beforeAll(async () => {
  // A short idle grace, so the loops of earlier batches stop and a batch's upstream count is its own.
  bridge = await startBridge({ AUTH_JWT_SECRET: JWT_SECRET, AUTH: '', RATE_LIMIT_PER_IP: '0', MAX_STREAMS_PER_IP: '0', MAX_STREAMS_PER_SESSION: '0', IDLE_GRACE_SECONDS: '0.2' });
  for (const id of LIVE) bridge.sim.createSession(id, { initialEvents: 5, emitEveryMs: 200, emitCount: 1000 });
  for (const id of DONE) bridge.sim.createSession(id, { initialEvents: 20, finished: true });
  goodToken = await token(['*']);
  otherToken = await token(['someone-else']);
  // Warm up (first loops, first connections, JIT), then take the baseline.
  await runBatch(Array.from({ length: 200 }, mixedRequest), async (r) => void (await send(bridge.url, r)));
  await eventually(() => bridge.server.streams.size === 0, 10_000, 'warm-up streams closed');
  baseline = await settledHeap(gc);
});
afterAll(() => bridge?.close());

describe(`fuzz (seed ${SEED})`, () => {
  it('refuses invalid requests with 4xx and sends nothing upstream for them', async () => {
    await quiet();
    const before = bridge.sim.totalRequests();
    const statsBefore = requestCounts();
    const seen = new Map<number, number>();
    const bad: string[] = [];
    await runBatch(Array.from({ length: INVALID_BATCH }, invalidRequest), async (r) => {
      const status = await send(bridge.url, r);
      seen.set(status, (seen.get(status) ?? 0) + 1);
      if (![400, 401, 403, 404, 414].includes(status)) bad.push(`${status} ${r.target.slice(0, 120)} ${JSON.stringify(r.headers).slice(0, 120)}`);
    });
    expect(bad, `statuses ${JSON.stringify([...seen])}`).toEqual([]);
    expect(bridge.sim.totalRequests()).toBe(before);
    expect(requestCounts()).toEqual(statsBefore);
    expect(seen.get(400)).toBeGreaterThan(0);
    expect(seen.get(401)).toBeGreaterThan(0);
    expect(seen.get(403)).toBeGreaterThan(0);
  });

  it('answers raw, malformed request lines with 4xx JSON or a closed socket, never a crash', async () => {
    await quiet();
    const before = bridge.sim.totalRequests();
    const bad: string[] = [];
    await runBatch(Array.from({ length: RAW_BATCH }, rawLine), async (line) => {
      const answer = await rawRequest(bridge.url, Buffer.from(line, 'latin1'));
      if (answer.status >= 500 || (answer.status !== 0 && answer.status < 400)) bad.push(`${answer.status} ${JSON.stringify(line.slice(0, 100))}`);
    });
    expect(bad).toEqual([]);
    expect(bridge.sim.totalRequests()).toBe(before);
  });

  it('never answers 5xx to a mix of valid and invalid requests, and only valid ids reach the upstream', async () => {
    const statuses = new Map<number, number>();
    const fivexx: string[] = [];
    await runBatch(Array.from({ length: MIXED_BATCH }, mixedRequest), async (r) => {
      const status = await send(bridge.url, r);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      if (status >= 500) fivexx.push(`${status} ${r.target.slice(0, 120)}`);
    });
    expect(fivexx, `statuses ${JSON.stringify([...statuses])}`).toEqual([]);
    expect(statuses.get(200)).toBeGreaterThan(0);
    for (const id of Object.keys(bridge.sim.allStats())) expect(id).toMatch(SESSION_ID_PATTERN);
  });

  it('is still serving, holds no stream, and its heap is back near the baseline', async () => {
    expect((await fetch(`${bridge.url}/healthz`)).status).toBe(200);
    await eventually(() => bridge.server.streams.size === 0, 10_000, 'every fuzz stream closed');
    const after = await settledHeap(gc);
    expect(after - baseline, `heap ${Math.round(baseline / 1e6)} MB -> ${Math.round(after / 1e6)} MB`).toBeLessThan(HEAP_GROWTH_BOUND_BYTES);
  });
});
