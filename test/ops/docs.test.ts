/**
 * The documentation against the code: docs/configuration.md's table against
 * config OPTIONS (both ways, with flags and defaults), docs/operations.md's
 * metric names against METRIC_NAMES and a running bridge's /metrics, and
 * openapi.yaml's paths against the routes a running demo bridge really answers.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { OPTIONS, loadConfig } from '../../src/config.ts';
import { METRIC_NAMES } from '../../src/metrics.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { scrape } from '../helpers/prom-text.ts';

const configDoc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
const opsDoc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const openapi = readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8');

/** The text of `doc` between `<!-- SECTION:name -->` and the next section marker. */
function section(doc: string, name: string): string {
  const start = doc.indexOf(`<!-- SECTION:${name} -->`);
  if (start < 0) throw new Error(`no <!-- SECTION:${name} --> marker`);
  const end = doc.indexOf('<!-- SECTION:', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

/** Rows of the configuration table: `| `VAR` | `--flag` | default | meaning |`. */
function configRows(): Array<{ env: string; flag: string; fallback: string }> {
  return section(configDoc, 'config')
    .split('\n')
    .filter((l) => /^\| `[A-Z0-9_]+` \|/.test(l))
    .map((l) => {
      const cells = l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
      return { env: cells[0]!.replace(/`/g, ''), flag: cells[1]!.replace(/`/g, ''), fallback: cells[2]!.replace(/`/g, '') };
    });
}

const HOW_TO_FIX = 'regenerate it with `node scripts/config-table.ts` and paste it under <!-- SECTION:config --> in docs/configuration.md';

describe('docs/configuration.md table', () => {
  it('lists every variable of config OPTIONS, with its flag and default', () => {
    const rows = new Map(configRows().map((r) => [r.env, r]));
    for (const o of OPTIONS) {
      const row = rows.get(o.env);
      expect(row, `${o.env} is missing from docs/configuration.md's table: ${HOW_TO_FIX}`).toBeDefined();
      expect(row!.flag, `${o.env}'s flag: ${HOW_TO_FIX}`).toBe(`--${o.flag}`);
      expect(row!.fallback, `${o.env}'s default: ${HOW_TO_FIX}`).toBe(o.default ?? 'unset');
    }
  });

  it('names no variable that config OPTIONS does not have', () => {
    const known = new Set(OPTIONS.map((o) => o.env));
    const rows = configRows();
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) expect(known.has(r.env), `docs/configuration.md documents ${r.env}, which src/config.ts does not read: ${HOW_TO_FIX}`).toBe(true);
  });
});

describe('metrics and HTTP surface, against a running bridge', () => {
  let server: PollcastServer;
  beforeAll(async () => {
    // Demo mode (no UPSTREAM_URL), so the session list and session demo-1 exist.
    server = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent' }), { log: silentLogger(), processMetrics: false });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('docs/operations.md names every metric of METRIC_NAMES, and /metrics exports each', async () => {
    const m = await scrape(server.url);
    for (const name of METRIC_NAMES) {
      expect(opsDoc.includes(`\`${name}`), `docs/operations.md does not document ${name}`).toBe(true);
      expect(m.declared.has(name), `/metrics does not export ${name}`).toBe(true);
    }
    // And the other way: a metric /metrics exports that METRIC_NAMES lacks would go undocumented unnoticed.
    const own = [...m.declared].filter((n) => n.startsWith('pollcast_') && !/^pollcast_(process|nodejs)_/.test(n));
    expect(own.filter((n) => !(METRIC_NAMES as readonly string[]).includes(n))).toEqual([]);
  });

  it('README and docs/ name no pollcast metric that does not exist', () => {
    // pollcast_token is AUTH_COOKIE_NAME's default (a cookie), not a metric.
    const named = new Set([...(readme + opsDoc + configDoc).matchAll(/\bpollcast_[a-z_]+/g)].map((x) => x[0]).filter((n) => !/^pollcast_(process|nodejs)_/.test(n) && n !== 'pollcast_token'));
    const known = new Set<string>(METRIC_NAMES);
    for (const n of named) expect(known.has(n), `the docs name ${n}, which METRIC_NAMES does not list`).toBe(true);
  });

  it('every path in openapi.yaml is a route the bridge answers', async () => {
    const paths = [...openapi.matchAll(/^ {2}(\/\S*):$/gm)].map((x) => x[1]!);
    expect(paths).toEqual(expect.arrayContaining(['/sessions/{id}/events', '/sessions/{id}/changes', '/healthz', '/metrics', '/sessions/events']));
    expect(paths).toContain('/events');
    // A path whose required query has no place in the path itself gets it here.
    const query: Record<string, string> = { '/events': '?session=demo-1' };
    for (const p of paths) {
      const abort = new AbortController();
      const res = await fetch(server.url + p.replace('{id}', 'demo-1') + (query[p] ?? ''), { signal: AbortSignal.any([abort.signal, AbortSignal.timeout(10_000)]) });
      abort.abort(); // the event stream would stay open
      // 204 is /changes' documented answer when demo-1 has no event yet.
      expect([200, 204], `${p} answered ${res.status}`).toContain(res.status);
    }
  });
});

/** Every pollcast source file (not the simulator's), as one text with `\'` read as `'`. */
function sourceText(): string {
  const root = new URL('../../src/', import.meta.url);
  const files = (readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.startsWith('simulator'));
  return files.map((f) => readFileSync(new URL(f, root), 'utf8')).join('\n').replaceAll("\\'", "'");
}

describe('docs/operations.md log table', () => {
  it('lists only messages the code logs', () => {
    const logs = section(opsDoc, 'ops');
    const start = logs.indexOf('| message | level | fields |');
    expect(start).toBeGreaterThan(0);
    const rows = logs.slice(start).split('\n').slice(2).filter((l) => l.startsWith('| '));
    expect(rows.length).toBeGreaterThan(5);
    const source = sourceText();
    for (const row of rows) {
      const first = row.split(' | ')[0]!.slice(2);
      const messages = [...first.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\s*…$/, ''));
      expect(messages.length, row).toBeGreaterThan(0);
      for (const m of messages) expect(source.includes(m), `"${m}" is not logged by src/`).toBe(true);
    }
  });
});
