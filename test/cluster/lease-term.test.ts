/**
 * One lease term against a real redis-server: a renewal answered after the
 * term ended (the session over while it was on the wire) leaves no deadline
 * behind, so no "lease not renewed in time" warning comes a lease later
 * (seen on 2 of 448 sessions in a cluster soak, 6 Dec 2026).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connectRedis, type RedisConn } from '../../src/transport/redis-conn.ts';
import { LeaseKeeper, type TermEnd } from '../../src/transport/lease.ts';
import { logKeys } from '../../src/transport/redis-log.ts';
import { Stats } from '../../src/metrics.ts';
import { captureLog } from '../helpers/log-capture.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

const LEASE_MS = 1200;

let redis: RedisServer | undefined;
let conn: RedisConn | undefined;
afterEach(async () => {
  await conn?.close();
  await redis?.stop();
});

describe('a lease term', () => {
  it('ends without a lapse warning when its last renewal is answered after it ended', async () => {
    redis = await startRedis();
    const captured = captureLog('debug');
    const stats = new Stats();
    const real = connectRedis({ url: redis.url, log: captured.log, stats });
    conn = real;
    let renewSent: () => void = () => {};
    const renewOnWire = new Promise<void>((resolve) => (renewSent = resolve));
    // The real connection, with each renewal's answer held 300 ms: the term ends while one is on the wire.
    const slowRenewals: RedisConn = Object.create(real, {
      run: {
        value: async (op: string, ...rest: Parameters<RedisConn['run']> extends [string, ...infer R] ? R : never) => {
          const answer = await real.run(op, ...rest);
          if (op === 'renew') {
            renewSent();
            await new Promise((resolve) => setTimeout(resolve, 300));
          }
          return answer;
        },
      },
    });
    const stop = new AbortController();
    let terms = 0;
    const keeper = new LeaseKeeper(
      {
        redis: slowRenewals,
        keys: logKeys('pollcast-test', 'term', true),
        sessionId: 'term',
        instanceId: 'i1',
        leaseMs: LEASE_MS,
        maxEntries: 100,
        retentionMs: 60_000,
        log: captured.log,
        stats,
        onLogSeen: () => {},
        lead: async (): Promise<TermEnd> => {
          terms++;
          // Leads until a renewal is on the wire, then the session is over.
          await renewOnWire;
          return 'done';
        },
      },
      stop.signal,
    );
    await keeper.run();
    expect(terms).toBe(1);
    expect(stats.leasesHeld).toBe(0);
    // Past the lease the late renewal would have dated a deadline from.
    await new Promise((resolve) => setTimeout(resolve, LEASE_MS + 300));
    expect(captured.lines().filter((l) => /lease not renewed/.test(l.msg)).map((l) => l.msg)).toEqual([]);
    stop.abort();
  });
});
