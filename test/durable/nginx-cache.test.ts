/**
 * Behind a real shared cache (Debian's nginx with proxy_cache and
 * proxy_cache_lock, started by the test in a temporary directory): many
 * `@durable-streams/client` readers of a finished session from `offset=-1`
 * all read it whole, and pollcast answers each distinct chunk once. The
 * full-size run is `node bench/durable-cache.ts` (docs/durable-streams.md).
 */
import { describe, expect, it } from 'vitest';
import { measureDurableCache } from '../../bench/durable-cache.ts';
import { startNginx } from '../../bench/nginx.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast } from '../../src/server.ts';
import { createSimulator } from '../../src/simulator/index.ts';
import { eventually } from '../helpers/harness.ts';

describe('a finished session read through nginx', () => {
  it('costs pollcast one answer per distinct URL, however many readers', async () => {
    const r = await measureDurableCache({ events: 450, readers: 60, concurrency: 12 });
    expect(r.readersComplete).toBe(r.readers);
    // A catch-up answer reads on to the end record: the finished session is one URL, read by every reader.
    expect(r.distinctUrls).toBe(1);
    expect(r.requestsThroughCache).toBe(r.readers * r.distinctUrls);
    expect(r.pollcastRequests).toBe(r.distinctUrls);
    expect(r.maxPollcastRequestsPerUrl).toBe(1);
    expect(r.cacheStatuses.HIT).toBe(r.requestsThroughCache - r.distinctUrls);
  }, 120_000);
});

describe('HEAD through nginx', () => {
  it('names the live tail, never a cached catch-up GET\'s: after new events and after the end', async () => {
    const sim = await createSimulator({ api: 'real' });
    const server = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'silent' }), { log: silentLogger(), processMetrics: false });
    const nginx = await startNginx(server.url);
    try {
      sim.createSession('hd1', { initialEvents: 10, imageBytes: 0 });
      const url = `${nginx.url}/v1/stream/sessions/hd1`;
      const tail = async () => {
        const res = await fetch(url, { method: 'HEAD' });
        expect(res.headers.get('cache-control')).toBe('no-store');
        return { next: res.headers.get('stream-next-offset')!, closed: res.headers.get('stream-closed') };
      };
      // A catch-up GET of the same URL goes into the cache first (a live head: cacheable for 60 s).
      const get = await fetch(url);
      expect(get.status).toBe(200);
      await get.arrayBuffer();
      expect((await tail()).next.startsWith('0000000000000010_')).toBe(true);
      sim.appendEvents('hd1', 5);
      await eventually(async () => (await tail()).next.startsWith('0000000000000015_'), 5000, 'HEAD to name the new tail');
      // With its closing events, which answer the loop's long-poll at once.
      sim.finish('hd1', { answer: 'done', closingEvents: true });
      await eventually(async () => (await tail()).closed === 'true', 10_000, 'HEAD to say the stream is closed');
    } finally {
      await nginx.stop();
      await server.close();
      await sim.close();
    }
  }, 60_000);
});
