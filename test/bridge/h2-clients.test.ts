/**
 * Real EventSource clients over HTTP/2: the `eventsource` package on undici's
 * HTTP/2 dispatchers, straight to pollcast over h2c (several streams on one
 * connection, a reset connection resumed exactly) and through a
 * TLS-terminating HTTP/2 proxy that speaks h2c or HTTP/1.1 to pollcast.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Agent, fetch as undiciFetch, H2CClient, type Dispatcher } from 'undici';
import { connect } from 'node:http2';
import { range, startBridge, type Bridge } from '../helpers/harness.ts';
import { h2request } from '../helpers/h2.ts';
import { recordMany, sessionQuery, startTcpProxy, type TcpProxy } from '../helpers/multi.ts';
import { selfSignedCert, startTlsProxy, type TlsProxy } from '../helpers/tls-proxy.ts';

let bridge: Bridge | undefined;
let tcp: TcpProxy | undefined;
let tls: TlsProxy | undefined;
const dispatchers: Dispatcher[] = [];
afterEach(async () => {
  for (const d of dispatchers.splice(0)) await d.destroy();
  await tls?.close();
  tls = undefined;
  await tcp?.close();
  tcp = undefined;
  await bridge?.close();
  bridge = undefined;
});

/** A fetch for EventSource that goes through `dispatcher` (undici's own fetch: the global one takes no foreign dispatcher). */
function fetchVia(dispatcher: Dispatcher): typeof fetch {
  dispatchers.push(dispatcher);
  return ((input: string | URL | Request, init?: RequestInit) => undiciFetch(input as string, { ...(init as object), dispatcher } as never)) as unknown as typeof fetch;
}

const haveOpenssl = selfSignedCert() !== null;

describe('EventSource over HTTP/2', () => {
  it('h2c straight to pollcast: three multiplexed streams on one connection, exact after a reset', async () => {
    bridge = await startBridge({ H2C: 'true', SSE_RETRY_MS: '30' });
    tcp = await startTcpProxy(bridge.url);
    const counts: Record<string, number> = {};
    const ids = range(6).map((i) => `hc-${i}`);
    ids.forEach((id, i) => {
      counts[id] = 50 + 10 * i;
      bridge!.sim.createSession(id, { emitEveryMs: 8, emitCount: counts[id] });
    });
    // One HTTP/2 connection (pipelining = concurrent streams) for all three EventSources.
    const h2fetch = fetchVia(new H2CClient(tcp.url, { pipelining: 10, bodyTimeout: 0 }));
    const lists = [ids.slice(0, 3), ids.slice(3), ids];
    const recorders = lists.map((list) => recordMany(`${tcp!.url}/events?${sessionQuery(list)}`, list, { fetch: h2fetch }));
    await Promise.all(recorders.map((r) => r.until((x) => x.frames.some((f) => f.type === 'message'))));
    expect(bridge.server.h2c!.sessions).toBe(1);
    expect(await bridge.server.connections()).toBe(1);
    expect(bridge.server.streams.size).toBe(3);
    await recorders[2]!.until((x) => x.frames.filter((f) => f.type === 'message').length > 100);
    expect(tcp.resetAll()).toBe(1);
    await Promise.all(recorders.map((r) => r.allEnded(30_000)));
    recorders.forEach((r, k) => {
      expect(r.opens()).toBeGreaterThanOrEqual(2);
      for (const id of lists[k]!) expect(r.indices(id), id).toEqual(range(counts[id]!));
    });
    expect(bridge.server.h2c!.sessionsTotal).toBeGreaterThanOrEqual(2);
  });

  for (const backend of ['h2c', 'http1'] as const) {
    it.skipIf(!haveOpenssl)(`through a TLS-terminating HTTP/2 proxy speaking ${backend} to pollcast`, async () => {
      bridge = await startBridge({ H2C: 'true', SSE_RETRY_MS: '30' });
      tls = await startTlsProxy(bridge.url, { backend });
      const ids = range(4).map((i) => `tp-${i}`);
      for (const id of ids) bridge.sim.createSession(id, { emitEveryMs: 10, emitCount: 40 });
      bridge.sim.createSession('tp-single', { emitEveryMs: 10, emitCount: 40 });
      // Browsers' side: HTTP/2 over TLS (ALPN h2), one connection for everything.
      const h2tls = fetchVia(new Agent({ allowH2: true, connections: 1, connect: { ca: tls.cert }, bodyTimeout: 0 }));
      const many = recordMany(`${tls.url}/events?sessions=${ids.join(',')}`, ids, { fetch: h2tls });
      const overview = recordMany(`${tls.url}/events?sessions=${ids.join(',')}&mode=overview`, ids, { fetch: h2tls });
      const single = connect(tls.url, { ca: tls.cert });
      single.on('error', () => {});
      const one = h2request(single, '/sessions/tp-single/events');
      await many.until((x) => x.frames.filter((f) => f.type === 'message').length > 20);
      // A network cut between browser and proxy: EventSource reconnects, every session resumes exactly.
      tls.dropClients();
      await Promise.all([many.allEnded(30_000), overview.allEnded(30_000)]);
      single.destroy();
      for (const id of ids) expect(many.indices(id)).toEqual(range(40));
      expect(overview.frames.filter((f) => f.type === 'message')).toEqual([]);
      expect(many.opens()).toBeGreaterThanOrEqual(2);
      expect(tls.requests.filter((r) => r.path.startsWith('/events')).every((r) => r.httpVersion === '2.0')).toBe(true);
      expect(one.text()).toContain('event: status');
      if (backend === 'h2c') expect(bridge.server.h2c!.sessionsTotal).toBe(1);
      else expect(bridge.server.h2c!.sessionsTotal).toBe(0);
    });
  }
});
