/** The token variables of the configuration: JWKS URL form, what counts as configured auth, defaults. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const UP = { UPSTREAM_URL: 'http://127.0.0.1:9/api/v2' };

describe('token configuration', () => {
  it('counts AUTH_JWKS_URL as configured auth with UPSTREAM_URL, and defaults the claim and cookie', () => {
    const config = loadConfig({ ...UP, AUTH_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json' });
    expect(config.authJwksUrl).toBe('https://idp.example.com/.well-known/jwks.json');
    expect(config.authJwtSessionsClaim).toBe('sessions');
    expect(config.authCookieName).toBe('pollcast_token');
    expect(() => loadConfig(UP)).toThrow(/AUTH_JWKS_URL/);
  });

  it.each([
    ['AUTH_JWKS_URL', 'ftp://idp.example.com/jwks.json', /http/],
    ['AUTH_JWKS_URL', 'not a url', /not a URL/],
    ['AUTH_JWKS_URL', 'https://user:pw@idp.example.com/jwks.json', /credentials/],
    ['AUTH_COOKIE_NAME', 'bad name', /cookie name/],
    ['AUTH_COOKIE_NAME', 'a;b', /cookie name/],
    ['AUTH_JWT_SESSIONS_CLAIM', 'two words', /without spaces/],
    ['AUTH_JWKS_COOLDOWN_SECONDS', '0', /AUTH_JWKS_COOLDOWN_SECONDS/],
  ])('refuses %s=%j naming the variable', (variable, value, why) => {
    let err: unknown;
    try {
      loadConfig({ ...UP, AUTH_JWKS_URL: 'https://idp.example.com/jwks.json', [variable]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as Error).message).toMatch(why);
  });

  it('names AUTH when a real upstream has no subscriber authentication, and says a negative number is negative', () => {
    let err: unknown;
    try {
      loadConfig(UP);
    } catch (e) {
      err = e;
    }
    expect((err as ConfigError).variable).toBe('AUTH');
    expect(() => loadConfig({ UPSTREAM_WAIT_SECONDS: '-5' })).toThrow(/UPSTREAM_WAIT_SECONDS.*must not be negative/);
    expect(() => loadConfig({ IDLE_GRACE_SECONDS: '-1' })).toThrow(/IDLE_GRACE_SECONDS.*must not be negative/);
    expect(() => loadConfig({ UPSTREAM_WAIT_SECONDS: 'abc' })).toThrow(/UPSTREAM_WAIT_SECONDS.*whole number/);
  });

  it.each([
    ['UPSTREAM_URL', 'https://user:SECRETPW@exa mple.com/api'],
    ['AUTH_JWKS_URL', 'https://u:SECRETPW@[bad/'],
    ['UPSTREAM_URL', 'not a url?key=SECRETPW'],
    ['UPSTREAM_URL', 'https://user:pa#SECRETPW@exa mple.com/api'],
    ['UPSTREAM_URL', 'redis://user:p/SECRETPW@host:6379x'],
    ['UPSTREAM_URL', 'https://user:pa?SECRETPW@exa mple.com/api'],
    ['UPSTREAM_URL', 'https://user:1?SECRETPW@host'],
    ['UPSTREAM_URL', 'admin:SECRETPW@api.example.com/api/v2'],
    ['UPSTREAM_URL', 'https://user:123/SECRETPW@api.example.com/api/v2'],
    ['AUTH_JWKS_URL', 'user:SECRETPW@idp.example.com/jwks'],
    ['AUTH_JWKS_URL', 'https://user:123/SECRETPW@idp.example.com/jwks'],
  ])('never shows the credentials or query of a %s it cannot parse (%j)', (variable, value) => {
    let err: unknown;
    try {
      loadConfig({ ...UP, AUTH: 'none', [variable]: value });
    } catch (e) {
      err = e;
    }
    expect((err as ConfigError).variable).toBe(variable);
    expect((err as Error).message).toMatch(/credentials and query not shown/);
    expect((err as Error).message).not.toContain('SECRETPW');
  });

  it('refuses an issuer or audience with no key to check tokens', () => {
    expect(() => loadConfig({ AUTH_JWT_ISSUER: 'https://idp.example.com/' })).toThrow(/AUTH_JWT_ISSUER.*neither AUTH_JWT_SECRET nor AUTH_JWKS_URL/);
    expect(() => loadConfig({ AUTH_JWT_AUDIENCE: 'app' })).toThrow(/AUTH_JWT_AUDIENCE/);
    expect(loadConfig({ AUTH_JWT_AUDIENCE: 'app', AUTH_JWKS_URL: 'http://127.0.0.1:1/jwks' }).authJwtAudience).toBe('app');
  });

  it('takes a URL-like sessions claim name', () => {
    expect(loadConfig({ AUTH_JWT_SESSIONS_CLAIM: 'https://app.example.com/sessions' }).authJwtSessionsClaim).toBe('https://app.example.com/sessions');
  });
});
