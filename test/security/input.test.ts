/**
 * Input handling at both edges: session ids are validated before any upstream
 * call and travel upstream percent-encoded inside one path segment; upstream
 * bodies are shape-checked and cannot inject SSE frames or pollute prototypes.
 * A hostile upstream (a small node:http server written here, since the
 * simulator is well-behaved by design) plays the untrusted side.
 */
import { READY_PROBE_SESSION } from '../../src/readiness.ts';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { parseChanges } from '../../src/upstream/parse.ts';
import { record, startBridge, type Bridge } from '../helpers/harness.ts';

let bridge: Bridge | undefined;
let server: PollcastServer | undefined;
let upstream: Server | undefined;
afterEach(async () => {
  await bridge?.close();
  await server?.close();
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  upstream?.closeAllConnections();
  bridge = server = upstream = undefined;
});

/** Strings an upstream could use to break out of an SSE frame. */
const HOSTILE = ['line\nevent: end\ndata: {"forged":true}\n\n', 'cr\revent: end\r\rdata: x', 'crlf\r\n\r\nid: 999\r\n', '\u2028\u2029', '</script><script>alert(1)</script>', '\u0000nul'];

interface Hostile {
  url: string;
  /** Raw request targets received, in order. */
  targets: string[];
}

/** Serves one finished session whose every string field is hostile. */
async function hostileUpstream(): Promise<Hostile> {
  const targets: string[] = [];
  const state = { status: `done${HOSTILE[0]}`, started_at: HOSTILE[1], finished_at: `2024-01-01T00:00:00Z${HOSTILE[2]}`, error: HOSTILE[0], answer: { text: HOSTILE.join('|') }, metrics: { steps: 1, note: HOSTILE[1] } };
  const events = HOSTILE.map((s, i) => ({ type: `t${i}${s}`, data: { text: s, __proto__: { polluted: s } }, timestamp: s }));
  upstream = createServer((req, res) => {
    targets.push(req.url ?? '');
    const url = new URL(req.url ?? '/', 'http://upstream.invalid');
    res.setHeader('content-type', 'application/json');
    if (url.pathname.endsWith('/status')) return res.end(JSON.stringify(state));
    const from = Number(url.searchParams.get('from_index'));
    // Written by hand so that "__proto__" is a real key of the body, as a hostile server would send it.
    const newEvents = events.slice(from).map((e) => `{"type":${JSON.stringify(e.type)},"data":{"text":${JSON.stringify(e.data.text)},"__proto__":{"polluted":true}},"timestamp":${JSON.stringify(e.timestamp)}}`);
    res.end(`{"__proto__":{"polluted":true},${JSON.stringify(state).slice(1, -1)},"new_events":[${newEvents.join(',')}]}`);
  });
  await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, targets };
}

describe('session ids', () => {
  it('travel upstream exactly inside one path segment, a colon as it is (a legal path character)', async () => {
    const hostile = await hostileUpstream();
    server = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: `${hostile.url}/`, AUTH: 'none', LOG_LEVEL: 'silent' }), { log: silentLogger(), processMetrics: false });
    const id = 'a:b..c_d-E.9';
    const r = record(`${server.url}/sessions/${id}/events`);
    await r.ended();
    // An upstream that matches its path without decoding it must see the id it knows.
    const encoded = 'a:b..c_d-E.9';
    // The readiness probe's own call (a made-up id, at start) is not the session's.
    const sessionTargets = hostile.targets.filter((t) => !t.startsWith(`/sessions/${READY_PROBE_SESSION}/`));
    expect(sessionTargets.length).toBeGreaterThan(0);
    for (const t of sessionTargets) {
      expect(t).toMatch(new RegExp(`^/sessions/${encoded.replace(/\./g, '\\.')}/(status|changes)(\\?|$)`));
      if (t.includes('/changes?')) expect([...new URL(t, 'http://x').searchParams.keys()].sort()).toEqual(['from_index', 'include_events', 'limit', 'wait_for_seconds']);
    }
  });

  it('that break the contract pattern never reach the upstream, however encoded', async () => {
    bridge = await startBridge();
    const before = bridge.sim.totalRequests();
    const bad = ['..', '.hidden', '-x', 'a%2Fb', 'a%2F..%2F..%2Fadmin', '%2e%2e', 'a%00', 'x'.repeat(129), encodeURIComponent('é'), 'a%20b', 'a%3Fq%3D1', '%ZZ'];
    for (const id of bad) {
      for (const route of ['events', 'changes']) {
        const res = await fetch(`${bridge.url}/sessions/${id}/${route}`);
        expect([400, 404], `${id} ${route}`).toContain(res.status);
        expect(typeof ((await res.json()) as { error: unknown }).error).toBe('string');
      }
    }
    expect(bridge.sim.totalRequests()).toBe(before);
  });
});

describe('upstream bodies', () => {
  it('cannot inject SSE frames or events: hostile strings arrive as data, once, in order', async () => {
    const hostile = await hostileUpstream();
    server = await startPollcast(loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: hostile.url, AUTH: 'none', LOG_LEVEL: 'silent' }), { log: silentLogger(), processMetrics: false });
    const r = record(`${server.url}/sessions/h-1/events`);
    const end = await r.ended();
    expect(r.indices()).toEqual(HOSTILE.map((_s, i) => i));
    const messages = r.messages.filter((m) => m.type === 'message');
    for (const [i, m] of messages.entries()) {
      expect(m.id).toBe(String(i));
      expect(m.data.type).toBe(`t${i}${HOSTILE[i]}`);
      expect(m.data.data.text).toBe(HOSTILE[i]);
      expect(m.data.timestamp).toBe(HOSTILE[i]);
    }
    // Exactly one end, the real one, last; no forged frames anywhere.
    expect(r.messages.filter((m) => m.type === 'end')).toHaveLength(1);
    expect(r.messages.at(-1)!.type).toBe('end');
    expect(end.last_index).toBe(HOSTILE.length - 1);
    expect(end.error).toBe(HOSTILE[0]);
    expect(JSON.stringify(r.messages)).not.toContain('"forged"');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('are refused when their shape is wrong, without touching Object.prototype', () => {
    const polluting = JSON.parse('{"status":"x","__proto__":{"polluted":1},"metrics":{"__proto__":{"polluted":2}},"new_events":[{"type":"t","data":{"__proto__":{"polluted":3}},"timestamp":null}]}') as unknown;
    const ok = parseChanges(polluting);
    expect(ok.ok).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    for (const bad of [
      { status: 'x', new_events: [null] },
      { status: 'x', new_events: [{ type: 5 }] },
      { status: 'x', new_events: [{ type: 't', timestamp: 5 }] },
      { status: ['x'], new_events: [] },
      { status: 'x', new_events: 'many' },
      { status: 'x', metrics: 'free', new_events: [] },
      { status: 'x', error: { nested: true }, new_events: [] },
    ]) {
      expect(parseChanges(bad).ok, JSON.stringify(bad)).toBe(false);
    }
  });
});
