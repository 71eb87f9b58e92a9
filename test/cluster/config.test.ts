/** Cluster-mode settings: the lease is checked against the long-poll, REDIS_URL's scheme, and the URL's password is never echoed. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, minLeaseSeconds } from '../../src/config.ts';

const base = { UPSTREAM_URL: 'https://api.example.com', AUTH: 'none' };

describe('cluster configuration', () => {
  it('accepts redis:// and rediss:// with the default lease and long-poll', () => {
    expect(loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379' }).redisLeaseSeconds).toBe(60);
    const c = loadConfig({ ...base, REDIS_URL: 'rediss://default:pw@example.upstash.io:6379' });
    expect(c.redisUrl).toBe('rediss://default:pw@example.upstash.io:6379');
    expect(c.redisLogMaxEntries).toBe(1000);
    expect(minLeaseSeconds(25, 10)).toBe(54);
  });

  it('refuses a lease that would not outlast the long-poll, naming the variables', () => {
    const load = () => loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_LEASE_SECONDS: '30' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/REDIS_LEASE_SECONDS: is 30 but must be at least 54.*UPSTREAM_WAIT_SECONDS 25.*UPSTREAM_TIMEOUT_MARGIN_SECONDS 10/);
    // A shorter wait makes a shorter lease valid; without REDIS_URL the lease is not checked.
    expect(loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379', REDIS_LEASE_SECONDS: '6', UPSTREAM_WAIT_SECONDS: '2', UPSTREAM_TIMEOUT_MARGIN_SECONDS: '1' }).redisLeaseSeconds).toBe(6);
    expect(loadConfig({ ...base, REDIS_LEASE_SECONDS: '5' }).redisLeaseSeconds).toBe(5);
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
});
