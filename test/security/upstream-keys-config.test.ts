/** AUTH=upstream in the configuration: accepted values, the start refused without any authentication, and the cache lifetime. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const UPSTREAM = { UPSTREAM_URL: 'https://agp.example.com/api/v2' };

function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('the configuration was accepted');
}

describe('AUTH=upstream configuration', () => {
  it('starts with AUTH=upstream alone, keeps its verdicts 60 s by default, and takes UPSTREAM_AUTH_HEADER without UPSTREAM_API_KEY', () => {
    const config = loadConfig({ ...UPSTREAM, AUTH: 'upstream' });
    expect(config.auth).toBe('upstream');
    expect(config.authUpstreamCacheSeconds).toBe(60);
    expect(loadConfig({ ...UPSTREAM, AUTH: 'upstream', AUTH_UPSTREAM_CACHE_SECONDS: '5', UPSTREAM_AUTH_HEADER: 'X-API-Key' })).toMatchObject({ authUpstreamCacheSeconds: 5, upstreamAuthHeader: 'X-API-Key' });
    expect(loadConfig({ ...UPSTREAM, AUTH: 'upstream', AUTH_JWT_SECRET: 'x'.repeat(32) }).auth).toBe('upstream');
  });

  it('refuses to start with UPSTREAM_URL and no authentication, in one line naming every choice', () => {
    const err = refusal(UPSTREAM);
    expect(err.message).not.toContain('\n');
    for (const choice of ['AUTH_JWT_SECRET', 'AUTH_JWKS_URL', 'AUTH=upstream', 'AUTH=none']) expect(err.message).toContain(choice);
  });

  it('names the variable of a bad value', () => {
    expect(refusal({ ...UPSTREAM, AUTH: 'keys' }).variable).toBe('AUTH');
    for (const bad of ['0', '-1', '1.5', 'abc', '3601']) expect(refusal({ ...UPSTREAM, AUTH: 'upstream', AUTH_UPSTREAM_CACHE_SECONDS: bad }).variable).toBe('AUTH_UPSTREAM_CACHE_SECONDS');
    // Without AUTH=upstream, a header with no key to carry is still a mistake.
    expect(refusal({ ...UPSTREAM, AUTH: 'none', UPSTREAM_AUTH_HEADER: 'X-API-Key' }).variable).toBe('UPSTREAM_AUTH_HEADER');
  });

  it('refuses a header that cannot carry the key (HTTP framing and connection headers, and the two pollcast sets), naming it', () => {
    for (const name of ['Host', 'content-length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Accept', 'User-Agent']) {
      const err = refusal({ ...UPSTREAM, AUTH: 'upstream', UPSTREAM_AUTH_HEADER: name });
      expect(err.variable).toBe('UPSTREAM_AUTH_HEADER');
      expect(err.message).toContain(name);
    }
    expect(loadConfig({ ...UPSTREAM, AUTH: 'upstream', UPSTREAM_AUTH_HEADER: 'Authorization' }).upstreamAuthHeader).toBe('Authorization');
  });

  it('refuses CORS_ORIGINS mixing * with origins (it would allow every origin), and takes either alone', () => {
    const err = refusal({ ...UPSTREAM, AUTH: 'none', CORS_ORIGINS: '*,https://a.example' });
    expect(err.variable).toBe('CORS_ORIGINS');
    expect(err.message).toMatch(/cannot be combined/);
    expect(loadConfig({ ...UPSTREAM, AUTH: 'none', CORS_ORIGINS: '*' }).corsOrigins).toBe('*');
    expect(loadConfig({ ...UPSTREAM, AUTH: 'none', CORS_ORIGINS: 'https://a.example,https://b.example' }).corsOrigins).toBe('https://a.example,https://b.example');
  });
});
