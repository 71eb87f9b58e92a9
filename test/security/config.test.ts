/**
 * Configuration that fails safe, checked on the real CLI: a bad value stops
 * the start with a non-zero exit and one line naming the variable; --help
 * lists every variable; the contract's variables and every limit are options.
 */
import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { helpText, loadConfig, OPTIONS } from '../../src/config.ts';
import { createSimulator } from '../../src/simulator/index.ts';
import { JWT_SECRET, runCli, startCli } from './helpers.ts';

/** CONTRACT.md section 2, plus the limits issue 3 adds. */
const CONTRACT_VARIABLES = ['PORT', 'HOST', 'UPSTREAM_URL', 'UPSTREAM_API_KEY', 'UPSTREAM_AUTH_HEADER', 'UPSTREAM_WAIT_SECONDS', 'AUTH_JWT_SECRET', 'AUTH', 'CORS_ORIGINS', 'REDIS_URL', 'LOG_LEVEL'];
const LIMIT_VARIABLES = ['MAX_STREAMS', 'MAX_STREAMS_PER_IP', 'MAX_STREAMS_PER_SESSION', 'RATE_LIMIT_PER_IP', 'RATE_LIMIT_BURST', 'MAX_URL_BYTES', 'MAX_HEADER_BYTES', 'TRUST_PROXY', 'MAX_SESSIONS'];

const UPSTREAM = 'http://127.0.0.1:9';

/** Bad environments, each with the variable its one line must name. */
const BAD: Array<[string, Record<string, string>, string]> = [
  ['a non-numeric port', { PORT: 'abc' }, 'PORT'],
  ['a port out of range', { PORT: '70000' }, 'PORT'],
  ['a blank port (Number(" ") would be 0)', { PORT: ' ' }, 'PORT'],
  ['a hex port', { PORT: '0x50' }, 'PORT'],
  ['a malformed upstream URL', { UPSTREAM_URL: 'notaurl', AUTH: 'none' }, 'UPSTREAM_URL'],
  ['a non-http upstream URL', { UPSTREAM_URL: 'ftp://example.com', AUTH: 'none' }, 'UPSTREAM_URL'],
  ['credentials inside the upstream URL', { UPSTREAM_URL: 'https://user:hunter2@example.com', AUTH: 'none' }, 'UPSTREAM_URL'],
  ['an upstream URL without auth', { UPSTREAM_URL: UPSTREAM }, 'UPSTREAM_URL'],
  ['AUTH=maybe', { AUTH: 'maybe' }, 'AUTH'],
  ['a short JWT secret', { AUTH_JWT_SECRET: 'short' }, 'AUTH_JWT_SECRET'],
  ['an API key with a newline', { UPSTREAM_API_KEY: 'abc\ndef' }, 'UPSTREAM_API_KEY'],
  ['a header name with a colon', { UPSTREAM_API_KEY: 'k', UPSTREAM_AUTH_HEADER: 'X-Key:' }, 'UPSTREAM_AUTH_HEADER'],
  ['an unknown log level', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  ['a CORS origin with a path', { CORS_ORIGINS: 'https://app.example.com/' }, 'CORS_ORIGINS'],
  ['a CORS origin that is not a URL', { CORS_ORIGINS: 'app.example.com' }, 'CORS_ORIGINS'],
  ['a wait of zero', { UPSTREAM_WAIT_SECONDS: '0' }, 'UPSTREAM_WAIT_SECONDS'],
  ['a negative stream limit', { MAX_STREAMS_PER_IP: '-1' }, 'MAX_STREAMS_PER_IP'],
  ['a fractional per-session limit', { MAX_STREAMS_PER_SESSION: '2.5' }, 'MAX_STREAMS_PER_SESSION'],
  ['a rate that is not a number', { RATE_LIMIT_PER_IP: 'fast' }, 'RATE_LIMIT_PER_IP'],
  ['a zero burst', { RATE_LIMIT_BURST: '0' }, 'RATE_LIMIT_BURST'],
  ['a URL limit above the header limit', { MAX_URL_BYTES: '20000', MAX_HEADER_BYTES: '8192' }, 'MAX_URL_BYTES'],
  ['a tiny header limit', { MAX_HEADER_BYTES: '10' }, 'MAX_HEADER_BYTES'],
  ['TRUST_PROXY=true', { TRUST_PROXY: 'true' }, 'TRUST_PROXY'],
  ['a host name with an underscore', { HOST: 'not_a_host' }, 'HOST'],
  ['a host name with a space', { HOST: 'local host' }, 'HOST'],
  ['a host name label starting with a hyphen', { HOST: '-pollcast.example.com' }, 'HOST'],
  ['a host name label over 63 characters', { HOST: `${'a'.repeat(64)}.example.com` }, 'HOST'],
  ['a host with an empty label', { HOST: 'pollcast..example.com' }, 'HOST'],
  ['a dotted number that is not an IPv4 address', { HOST: '256.1.1.1' }, 'HOST'],
  ['an IPv6 address in brackets', { HOST: '[::1]' }, 'HOST'],
  ['a malformed IPv6 address', { HOST: '::1::2' }, 'HOST'],
  ['a URL instead of a host', { HOST: 'http://127.0.0.1' }, 'HOST'],
  ['public sessions of commas alone', { PUBLIC_SESSIONS: ',' }, 'PUBLIC_SESSIONS'],
  ['a Redis key prefix past 64 characters, said as such', { REDIS_KEY_PREFIX: 'a'.repeat(65) }, 'at most 64 characters'],
];

describe.concurrent('a bad value stops the CLI with one line naming the variable', () => {
  it.each(BAD)('%s', async (_what, env, variable) => {
    const run = await runCli({ HOST: '127.0.0.1', ...env });
    expect(run.code).not.toBe(0);
    expect(run.code).not.toBeNull();
    const lines = run.stderr.trim().split('\n');
    expect(lines, run.stderr).toHaveLength(1);
    expect(lines[0]).toContain(variable);
    expect(run.stdout).not.toMatch(/listening/);
    // Nothing secret is echoed back.
    expect(run.stderr).not.toContain('hunter2');
  });

  it('a bad flag is refused the same way', async () => {
    const run = await runCli({}, ['--port', 'eighty']);
    expect(run.code).not.toBe(0);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain('PORT');
  });

  it('an empty flag is refused, not taken as unset over the environment', async () => {
    const run = await runCli({ LOG_LEVEL: 'silent' }, ['--log-level=']);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toEqual([expect.stringContaining('--log-level: needs a value')]);
    expect(run.stdout).not.toMatch(/listening/);
  });
});

/** Runs the CLI where it cannot listen; checks the one line naming `variable` and `value`, and that no stack was printed. */
async function expectListenRefused(env: Record<string, string>, variable: string, value: string): Promise<void> {
  const run = await runCli({ LOG_LEVEL: 'debug', ...env });
  expect(run.code, run.stderr).not.toBe(0);
  expect(run.code).not.toBeNull();
  const lines = run.stderr.trim().split('\n');
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toContain(`${variable}`);
  expect(lines[0]).toContain(value);
  expect(run.stdout).not.toMatch(/listening/);
  expect(`${run.stdout}${run.stderr}`, 'no stack trace').not.toMatch(/^\s+at /m);
}

describe.concurrent('a HOST or PORT that is valid but cannot be listened on stops the CLI with one line naming it', () => {
  it('an address that is not on this machine (EADDRNOTAVAIL) names HOST', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a real interface.
    await expectListenRefused({ HOST: '192.0.2.1', PORT: '0' }, 'HOST', '192.0.2.1');
  });

  it('a port already in use (EADDRINUSE) names PORT', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      await expectListenRefused({ HOST: '127.0.0.1', PORT: String(port) }, 'PORT', String(port));
    } finally {
      taken.close();
    }
  });
});

describe('the CLI starts when the configuration is sound', () => {
  it('starts with UPSTREAM_URL and AUTH=none, and with UPSTREAM_URL and a JWT secret', async () => {
    const sim = await createSimulator();
    try {
      const envs: Array<Record<string, string>> = [{ UPSTREAM_URL: sim.url, AUTH: 'none' }, { UPSTREAM_URL: sim.url, AUTH_JWT_SECRET: JWT_SECRET, MAX_STREAMS_PER_IP: '0', RATE_LIMIT_PER_IP: '0' }];
      for (const env of envs) {
        const cli = await startCli(env);
        try {
          expect((await fetch(`${cli.url}/healthz`)).status).toBe(200);
          expect(cli.output()).not.toMatch(/DEMO MODE/);
        } finally {
          expect(await cli.stop()).toBe(0);
        }
      }
    } finally {
      await sim.close();
    }
  });
});

describe('options', () => {
  it('cover every contract variable and every limit, each with an accepted form', () => {
    const names = OPTIONS.map((o) => o.env);
    for (const v of [...CONTRACT_VARIABLES, ...LIMIT_VARIABLES]) expect(names).toContain(v);
    for (const o of OPTIONS) expect(o.accepts.length, o.env).toBeGreaterThan(0);
    for (const v of LIMIT_VARIABLES) expect(OPTIONS.find((o) => o.env === v)?.default, `${v} has a default`).toBeDefined();
  });

  it('have defaults that load, and limits a bench can lift', () => {
    const c = loadConfig({});
    expect(c.maxStreamsPerIp).toBeGreaterThan(0);
    expect(c.maxStreamsPerSession).toBeGreaterThan(0);
    expect(c.rateLimitPerIp).toBeGreaterThan(0);
    expect(c.maxUrlBytes).toBeLessThanOrEqual(c.maxHeaderBytes);
    expect(c.trustProxy).toBe('none');
    const lifted = loadConfig({ MAX_STREAMS: '20000', MAX_STREAMS_PER_IP: '0', MAX_STREAMS_PER_SESSION: '0', RATE_LIMIT_PER_IP: '0', RATE_LIMIT_BURST: '100000' });
    expect([lifted.maxStreamsPerIp, lifted.maxStreamsPerSession, lifted.rateLimitPerIp]).toEqual([0, 0, 0]);
  });

  it('HOST takes IPv4 and IPv6 addresses and RFC 1123 host names as written', () => {
    for (const host of ['0.0.0.0', '127.0.0.1', '::', '::1', 'fe80::1%eth0', 'localhost', 'fly-local-6pn', 'pollcast-1.internal.example.com', '1password.example']) {
      expect(loadConfig({ HOST: host }).host, host).toBe(host);
    }
  });

  it('--help lists every variable with its default', async () => {
    const run = await runCli({}, ['--help']);
    expect(run.code).toBe(0);
    for (const o of OPTIONS) {
      const line = run.stdout.split('\n').find((l) => l.includes(`${o.env}:`));
      expect(line, o.env).toBeDefined();
      if (o.default !== undefined) expect(line).toContain(`(default ${o.default})`);
    }
  });

  it('--help says what pollcast is and keeps every flag apart from its variable', () => {
    const text = helpText();
    expect(text).toMatch(/Server-Sent Events/);
    for (const o of OPTIONS) expect(text, o.env).toMatch(new RegExp(`--${o.flag} <value>\\s{2,}${o.env}:`));
  });

  it('a value outside a list says what is accepted once, without contradiction; a case slip gets a hint', () => {
    const message = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    };
    expect(message({ LOG_LEVEL: 'verbose' })).toBe('LOG_LEVEL: invalid value "verbose": expected trace, debug, info, warn, error, fatal or silent');
    expect(message({ AUTH: 'None' })).toBe('AUTH: invalid value "None": expected "none" or "upstream" (values are lower case)');
    expect(loadConfig({ LOG_LEVEL: 'trace' }).logLevel).toBe('trace');
  });

  it('a whole number past the range, however large, names the range, not the largest safe integer', () => {
    let message = '';
    try {
      loadConfig({ UPSTREAM_PAGE_SIZE: '99999999999999999999' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^UPSTREAM_PAGE_SIZE: .*expected an integer 1-10000 \(Too big: expected number to be <=10000\)$/);
  });
});
