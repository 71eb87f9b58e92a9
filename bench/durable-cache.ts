/**
 * Durable Streams behind a real shared cache: nginx (`proxy_cache` +
 * `proxy_cache_lock`) in front of pollcast, the simulator (real-API mode) as
 * the upstream, and many `@durable-streams/client` readers of one finished
 * session from `offset=-1`, a bounded number at once. Counts the requests
 * pollcast itself answered per URL (from its own request log): with the
 * cache, each distinct chunk about once however many readers.
 *
 *   node bench/durable-cache.ts [--events 2000] [--readers 1000] [--concurrency 50] [--json]
 */
import { parseArgs } from 'node:util';
import { Writable } from 'node:stream';
import pino from 'pino';
import { stream } from '@durable-streams/client';
import { createSimulator } from '../src/simulator/index.ts';
import { loadConfig } from '../src/config.ts';
import { startPollcast } from '../src/server.ts';
import { startNginx } from './nginx.ts';

/** What one run measured. */
export interface DurableCacheResult {
  events: number;
  readers: number;
  concurrency: number;
  /** Readers that got every event once, in order, then the end record, and saw the stream closed. */
  readersComplete: number;
  /** Distinct URLs the readers asked for (the chain of chunk offsets). */
  distinctUrls: number;
  /** Requests the readers made through nginx. */
  requestsThroughCache: number;
  /** Requests pollcast answered, and the most for one URL. */
  pollcastRequests: number;
  maxPollcastRequestsPerUrl: number;
  /** Changes calls the upstream got for the session (one loop, once). */
  upstreamChangesCalls: number;
  /** nginx's verdicts on the readers' requests (HIT, MISS, …). */
  cacheStatuses: Record<string, number>;
  wallMs: number;
}

const SESSION = 'durable-bench';
/** A failing answer is retried a few times, then the reader fails (the client alone would retry forever). */
const READER_BACKOFF = { initialDelay: 100, maxDelay: 1000, multiplier: 2, maxRetries: 3 };

/** A logger that counts pollcast's own request log lines per Durable Stream URL (its debug `request` lines). */
function countingLogger(perUrl: Map<string, number>): pino.Logger {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.includes('"msg":"request"')) continue;
        const { url } = JSON.parse(line) as { url?: string };
        if (url?.startsWith('/v1/stream/')) perUrl.set(url, (perUrl.get(url) ?? 0) + 1);
      }
      done();
    },
  });
  return pino({ level: 'debug' }, sink);
}

// One reader: chunk by chunk with one-shot catch-up reads from -1, checking order as it goes (nothing kept).
async function readOnce(url: string, seen: Set<string>): Promise<{ ok: boolean; requests: number }> {
  let offset = '-1';
  let next = 0;
  let requests = 0;
  for (;;) {
    seen.add(offset);
    requests++;
    const res = await stream({ url, offset, live: false, json: true, backoffOptions: READER_BACKOFF });
    const items = (await res.json()) as Array<{ index?: number; event?: string }>;
    for (const m of items) {
      if (typeof m.index === 'number') {
        if (m.index !== next) return { ok: false, requests };
        next++;
      } else if (m.event === 'end' && !res.streamClosed) return { ok: false, requests };
    }
    offset = res.offset;
    if (res.streamClosed) return { ok: items.at(-1)?.event === 'end', requests };
  }
}

/** Runs the measurement once. */
export async function measureDurableCache(opts: { events: number; readers: number; concurrency: number }): Promise<DurableCacheResult & { expectedEvents: number }> {
  const sim = await createSimulator({ api: 'real' });
  const perUrl = new Map<string, number>();
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'debug', RATE_LIMIT_PER_IP: '0', MAX_STREAMS_PER_IP: '0' });
  const server = await startPollcast(config, { log: countingLogger(perUrl), processMetrics: false });
  const nginx = await startNginx(server.url).catch(async (err: unknown) => {
    await server.close();
    await sim.close();
    throw err;
  });
  try {
    // Screenshots off: the measure is requests per chunk, not bytes through loopback.
    sim.createSession(SESSION, { initialEvents: opts.events, imageBytes: 0 });
    sim.finish(SESSION, { answer: 'done' });
    const expectedEvents = sim.eventCount(SESSION);
    const url = `${nginx.url}/v1/stream/sessions/${SESSION}`;
    const seen = new Set<string>();
    let complete = 0;
    let requests = 0;
    let started = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (started < opts.readers) {
        started++;
        const r = await readOnce(url, seen);
        requests += r.requests;
        if (r.ok) complete++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, opts.readers) }, worker));
    const wallMs = Math.round(performance.now() - t0);
    const cacheStatuses: Record<string, number> = {};
    // nginx logs a request once it has finished it, which may be just after its reader has read the answer.
    let log = await nginx.accessLog();
    for (let tries = 0; log.length < requests && tries < 40; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      log = await nginx.accessLog();
    }
    for (const line of log) {
      const status = line.split(' ')[1] ?? '-';
      cacheStatuses[status] = (cacheStatuses[status] ?? 0) + 1;
    }
    const counts = [...perUrl.values()];
    return {
      events: opts.events,
      expectedEvents,
      readers: opts.readers,
      concurrency: opts.concurrency,
      readersComplete: complete,
      distinctUrls: seen.size,
      requestsThroughCache: requests,
      pollcastRequests: counts.reduce((a, b) => a + b, 0),
      maxPollcastRequestsPerUrl: Math.max(0, ...counts),
      upstreamChangesCalls: sim.stats(SESSION).changes,
      cacheStatuses,
      wallMs,
    };
  } finally {
    await nginx.stop();
    await server.close();
    await sim.close();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { events: { type: 'string', default: '2000' }, readers: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '50' }, json: { type: 'boolean', default: false } } });
  const r = await measureDurableCache({ events: Number(values.events), readers: Number(values.readers), concurrency: Number(values.concurrency) });
  if (values.json) console.log(JSON.stringify(r));
  else {
    console.log(`session: ${r.expectedEvents} events (finished); readers: ${r.readers}, ${r.concurrency} at once, from offset=-1 through nginx proxy_cache + proxy_cache_lock`);
    console.log(`readers complete (every event once, in order, end record, closed): ${r.readersComplete}/${r.readers}`);
    console.log(`requests through nginx: ${r.requestsThroughCache}; distinct URLs: ${r.distinctUrls}; nginx cache statuses: ${JSON.stringify(r.cacheStatuses)}`);
    console.log(`requests pollcast answered: ${r.pollcastRequests} (most for one URL: ${r.maxPollcastRequestsPerUrl}); upstream changes calls: ${r.upstreamChangesCalls}; wall: ${r.wallMs} ms`);
  }
}
