/** Cluster-mode settings: a lease independent of the long-poll (failover within about 10 s by default), REDIS_URL's scheme, and the URL's password is never echoed. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const base = { UPSTREAM_URL: 'https://api.example.com', AUTH: 'none' };

describe('cluster configuration', () => {
  it('accepts redis:// and rediss:// with the default lease and long-poll', () => {
    // A dead leader's sessions move within about the lease: the default keeps that under 10 s.
    expect(loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379' }).redisLeaseSeconds).toBeLessThanOrEqual(10);
    const c = loadConfig({ ...base, REDIS_URL: 'rediss://default:pw@example.upstash.io:6379' });
    expect(c.redisUrl).toBe('rediss://default:pw@example.upstash.io:6379');
    expect(c.redisLogMaxEntries).toBe(1000);
  });

  it('accepts a lease shorter than the long-poll (renewals run on their own timer), and refuses one out of range', () => {
    expect(loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_LEASE_SECONDS: '5', UPSTREAM_WAIT_SECONDS: '25', UPSTREAM_TIMEOUT_MARGIN_SECONDS: '10' }).redisLeaseSeconds).toBe(5);
    expect(() => loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_LEASE_SECONDS: '1' })).toThrow(/REDIS_LEASE_SECONDS/);
  });

  it('refuses another scheme, and never echoes the URL (it carries the password)', () => {
    let err: unknown;
    try {
      loadConfig({ ...base, REDIS_URL: 'http://default:s3cret@example.com:6379' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/^REDIS_URL: .*redis:\/\/ or rediss:\/\//);
    expect((err as Error).message).not.toContain('s3cret');
  });

  it('refuses, naming REDIS_URL and never echoing it, what the Redis client could not read: a path that is not a database number, a password that does not decode', () => {
    expect(loadConfig({ ...base, REDIS_URL: 'redis://default:pw@127.0.0.1:6379/3' }).redisUrl).toBe('redis://default:pw@127.0.0.1:6379/3');
    for (const url of ['redis://default:s3cret@127.0.0.1:16390/abc', 'redis://default:s3cret%zz@127.0.0.1:6379', 'redis://default:s3cret@127.0.0.1:6379/0/x']) {
      let err: unknown;
      try {
        loadConfig({ ...base, REDIS_URL: url });
      } catch (e) {
        err = e;
      }
      expect(err, url).toBeInstanceOf(ConfigError);
      expect((err as Error).message, url).toMatch(/^REDIS_URL: /);
      expect((err as Error).message, url).not.toContain('s3cret');
    }
  });
});
