/**
 * How soon pollcast's Redis connections are back once Redis answers again. An audit (7 Dec 2026) restarted Redis
 * for 1.5 s under a 2 s lease: two instances' command connections came back 1.2-1.5 s after Redis did (the
 * reconnect backoff had grown to 2 s), so each saw an outage longer than the lease and ran a loop of its own
 * around Redis: two loops for one session.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connectRedis, type RedisConn } from '../../src/transport/redis-conn.ts';
import { Stats } from '../../src/metrics.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { eventually } from '../helpers/harness.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

let redis: RedisServer | undefined;
let conn: RedisConn | undefined;
afterEach(async () => {
  await conn?.close();
  await redis?.stop();
});

describe('Redis connections after an outage', () => {
  it('all four (commands, reader, subscriber, probe) are back within 1 s of Redis answering, after 3 s away', async () => {
    redis = await startRedis();
    const captured = captureLog('info');
    conn = connectRedis({ url: redis.url, log: captured.log, stats: new Stats() });
    const c = conn;
    await eventually(() => c.state === 'ok', 5000, 'connected');
    const roles = () => new Set(captured.lines().filter((l) => l.msg === 'redis connection back').map((l) => (l as { role?: string }).role));
    await redis.stop();
    await eventually(() => c.state !== 'ok', 5000, 'Redis seen away');
    // Long enough for the backoff to reach its longest pause.
    await new Promise((r) => setTimeout(r, 3000));
    await redis.start();
    const back = performance.now();
    await eventually(() => roles().size === 4, 5000, 'every connection back');
    const tookMs = performance.now() - back;
    expect([...roles()].sort()).toEqual(['commands', 'probe', 'reader', 'subscriber']);
    expect(tookMs, 'from Redis answering to the last connection back (ms)').toBeLessThan(1000);
    expect(c.state).toBe('ok');
  }, 20_000);
});
