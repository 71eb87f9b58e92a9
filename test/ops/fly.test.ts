/**
 * fly.toml against pollcast's own limits and the image: the proxy's hard
 * limit above MAX_STREAMS (so pollcast answers 429 itself), kill_timeout
 * covering the graceful stop, the port the image exposes, no secret in [env].
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { OPTIONS, loadConfig } from '../../src/config.ts';

type Value = string | number | boolean | string[];

/** Enough TOML for fly.toml: `[table]`, `[[array.of.tables]]`, and `key = string | number | bool | [strings]`. */
function parseFlyToml(text: string): Record<string, Record<string, Value>> {
  const tables: Record<string, Record<string, Value>> = { '': {} };
  let current = tables['']!;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').replace(/^#.*$/, '').trim();
    if (line === '') continue;
    const header = /^\[\[?([\w.]+)\]\]?$/.exec(line);
    if (header) {
      current = tables[header[1]!] = {};
      continue;
    }
    const kv = /^([\w-]+)\s*=\s*(.+)$/.exec(line);
    if (!kv) throw new Error(`fly.toml: cannot read ${JSON.stringify(raw)}`);
    const v = kv[2]!;
    current[kv[1]!] = v.startsWith('"') || v.startsWith('[') ? (JSON.parse(v) as Value) : v === 'true' || v === 'false' ? v === 'true' : Number(v);
  }
  return tables;
}

const fly = parseFlyToml(readFileSync(new URL('../../fly.toml', import.meta.url), 'utf8'));
const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
const defaults = loadConfig({});

describe('fly.toml', () => {
  const service = fly['http_service']!;
  const concurrency = fly['http_service.concurrency']!;
  const env = fly['env']!;
  const maxStreams = Number(env.MAX_STREAMS ?? defaults.maxStreams);

  it('serves the port the image exposes, over HTTPS, always on', () => {
    expect(service.internal_port).toBe(8080);
    expect(dockerfile).toMatch(/^EXPOSE 8080$/m);
    expect(service.force_https).toBe(true);
    expect(['off', 'suspend']).toContain(service.auto_stop_machines);
    expect(service.min_machines_running).toBeGreaterThanOrEqual(1);
  });

  it("counts connections, with the hard limit a little above pollcast's MAX_STREAMS", () => {
    expect(concurrency.type).toBe('connections');
    const hard = concurrency.hard_limit as number;
    const soft = concurrency.soft_limit as number;
    expect(hard).toBeGreaterThan(maxStreams);
    expect(hard).toBeLessThanOrEqual(maxStreams * 1.1);
    expect(soft).toBeLessThan(maxStreams);
  });

  it('gives the graceful stop its time', () => {
    expect(fly['']!.kill_signal).toBe('SIGTERM');
    const shutdown = Number(env.SHUTDOWN_TIMEOUT_SECONDS ?? defaults.shutdownTimeoutSeconds);
    expect(fly['']!.kill_timeout as number).toBeGreaterThanOrEqual(shutdown);
    expect(fly['']!.kill_timeout as number).toBeGreaterThanOrEqual(10);
  });

  it('checks /healthz and exposes /metrics', () => {
    expect(fly['http_service.checks']!.path).toBe('/healthz');
    expect(fly['metrics']).toMatchObject({ port: 8080, path: '/metrics' });
  });

  it('sets only known, non-secret variables in [env], and they are valid', () => {
    for (const key of Object.keys(env)) {
      const opt = OPTIONS.find((o) => o.env === key);
      expect(opt, `${key} is not a pollcast variable`).toBeDefined();
      expect(opt!.secret, `${key} is a secret: use fly secrets set`).toBeFalsy();
    }
    // Valid as a whole, with the secret a deploy would add through `fly secrets set`.
    expect(() => loadConfig({ ...(env as Record<string, string>), AUTH_JWT_SECRET: 'x'.repeat(32) })).not.toThrow();
  });
});
