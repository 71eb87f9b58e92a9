/**
 * Behind a real shared cache (Debian's nginx with proxy_cache and
 * proxy_cache_lock, started by the test in a temporary directory): many
 * `@durable-streams/client` readers of a finished session from `offset=-1`
 * all read it whole, and pollcast answers each distinct chunk once. The
 * full-size run is `node bench/durable-cache.ts` (docs/durable-streams.md).
 */
import { describe, expect, it } from 'vitest';
import { measureDurableCache } from '../../bench/durable-cache.ts';

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
