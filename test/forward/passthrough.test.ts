/** The pass-through byte for byte: targets, headers, credentials, redirects, limits, failures, modes and HTTP/2 callers. */
import { createServer, request as httpRequest } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { connect as h2connect } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, range, startBridge, type Bridge } from '../helpers/harness.ts';
import { FORWARD_BUFFERED_BODIES } from '../../src/http/forward-route.ts';
import { h2request } from '../helpers/h2.ts';
import { JWT_SECRET, rawRequest, token } from '../security/helpers.ts';
import { api, CALL_TIMEOUT_MS, KEY_A, OPERATOR_KEY, startGateway } from './helpers.ts';

const bridges: Bridge[] = [];
async function gateway(env: Record<string, string> = {}): Promise<Bridge> {
  const b = await startGateway(env);
  bridges.push(b);
  return b;
}

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((b) => b.close()));
});

/** The requests the upstream received for paths under `prefix` (the loops' own changes/status calls left out). */
function forwardedTo(b: Bridge, prefix = '/api/v2/sessions'): Array<{ method: string; target: string; headers: Record<string, string[]> }> {
  return b.sim.requests().filter((r) => r.target.startsWith(prefix) && !/\/(changes|status)(\?|$)/.test(r.target));
}

/** A raw HTTP/1.1 request with exactly these headers (fetch refuses to send Connection and friends). */
function rawHttp(url: string, method: string, headers: Record<string, string | string[]>, body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, timeout: CALL_TIMEOUT_MS }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

describe('forwarding: what reaches the upstream', () => {
  it('a list query with repeated status keys reaches the upstream byte for byte, and its answer comes back as is', async () => {
    const b = await gateway();
    b.sim.createSession('listed', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    const query = 'status=running&agent=web%20agent&status=idle&search=caf%C3%A9+bar&status=completed&size=5&sort=-created_at';
    b.sim.clearRequests();
    const res = await api(`${b.url}/api/v2`, KEY_A, 'GET', `/sessions?${query}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ items: [], total: 0, page: 1, size: 5, pages: 0 });
    const [seen] = forwardedTo(b);
    expect(seen).toMatchObject({ method: 'GET', target: `/api/v2/sessions?${query}` });
    const direct = await api(b.sim.url, KEY_A, 'GET', '/sessions?status=running');
    expect((await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions?status=running')).body).toEqual(direct.body);
  });

  it('drops hop-by-hop headers, those Connection names, and Host; adds X-Forwarded-*; keeps the rest in order', async () => {
    const b = await gateway();
    b.sim.clearRequests();
    const res = await rawHttp(`${b.url}/api/v2/sessions?size=1`, 'GET', {
      authorization: `Bearer ${KEY_A}`,
      connection: 'keep-alive, x-hop-one',
      'x-hop-one': 'gone',
      'keep-alive': 'timeout=5',
      'proxy-authorization': 'Basic Zm9vOmJhcg==',
      'x-custom': ['one', 'two'],
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
    });
    expect(res.status).toBe(200);
    const [seen] = forwardedTo(b);
    const names = Object.keys(seen!.headers);
    for (const gone of ['x-hop-one', 'keep-alive', 'proxy-authorization']) expect(names, gone).not.toContain(gone);
    expect(seen!.headers.host).toEqual([new URL(b.sim.url).host]);
    expect(seen!.headers['x-custom']).toEqual(['one', 'two']);
    expect(seen!.headers.authorization).toEqual([`Bearer ${KEY_A}`]);
    expect(seen!.headers['x-forwarded-for']).toEqual(['203.0.113.7, 127.0.0.1']);
    // TRUST_PROXY=none: the caller's own X-Forwarded-Proto is not believed.
    expect(seen!.headers['x-forwarded-proto']).toEqual(['http']);
    expect(seen!.headers['x-forwarded-host']).toEqual([new URL(b.url).host]);
  });

  it('a request without credential reaches the upstream without any Authorization, even with UPSTREAM_API_KEY set, and gets its 401', async () => {
    const b = await gateway();
    expect(b.config.upstreamApiKey).toBe(OPERATOR_KEY);
    b.sim.clearRequests();
    const res = await api(`${b.url}/api/v2`, undefined, 'GET', '/sessions');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    const created = await api(`${b.url}/api/v2`, undefined, 'POST', '/sessions', { agent: 'x' });
    expect(created.status).toBe(401);
    const seen = forwardedTo(b);
    expect(seen).toHaveLength(2);
    for (const r of seen) expect(Object.keys(r.headers)).not.toContain('authorization');
    expect(JSON.stringify(seen)).not.toContain(OPERATOR_KEY);
    expect(b.sim.listSessions()).toEqual([]);
  });

  it('passes a 302 on with its Location, never following it', async () => {
    const b = await gateway();
    b.sim.createSession('shots', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    const res = await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions/shots/resources/screenshots/step-1.png');
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toMatch(/^https:\/\/resources\.example\.invalid\/screenshots\/step-1\.png\?X-Amz-Expires=300&X-Amz-Signature=[0-9a-f]{64}$/);
    expect(forwardedTo(b).filter((r) => r.target.includes('/resources/'))).toHaveLength(1);
  });

  it('answers what pollcast serves itself (changes, status) without forwarding, and 404s outside the API path stay', async () => {
    const b = await gateway();
    b.sim.createSession('own', { initialEvents: 2, imageBytes: 0 });
    b.sim.clearRequests();
    expect((await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions/own/status')).status).toBe(200);
    // The loop's own calls carry the operator key; no call carries the caller's.
    expect(b.sim.requests().every((r) => r.headers.authorization?.[0] === `Bearer ${OPERATOR_KEY}`)).toBe(true);
    const outside = await api(b.url, KEY_A, 'GET', '/api/v1/sessions');
    expect(outside.status).toBe(404);
    expect(outside.body.code).toBe('not_found');
  });

  it('forwards other methods on the drop-in paths (only GET and HEAD are pollcast\'s); outside the API path they stay 405', async () => {
    const b = await gateway();
    b.sim.createSession('posted', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    b.sim.clearRequests();
    for (const [method, path] of [['POST', '/sessions/posted/changes'], ['DELETE', '/sessions/posted/status']] as const) {
      const direct = await api(b.sim.url, KEY_A, method, path);
      const via = await api(`${b.url}/api/v2`, KEY_A, method, path);
      expect(via.status).toBe(direct.status);
      expect(via.body).toEqual(direct.body);
    }
    const sent = b.sim.requests().filter((r) => r.method !== 'GET' && /\/sessions\/posted\/(changes|status)$/.test(r.target));
    expect(sent.map((r) => `${r.method} ${r.target}`)).toEqual(['POST /api/v2/sessions/posted/changes', 'POST /api/v2/sessions/posted/changes', 'DELETE /api/v2/sessions/posted/status', 'DELETE /api/v2/sessions/posted/status']);
    expect(sent.every((r) => r.headers.authorization?.[0] === `Bearer ${KEY_A}`)).toBe(true);
    const root = await api(b.url, KEY_A, 'POST', '/sessions/posted/changes');
    expect(root.status).toBe(405);
    expect(root.body.code).toBe('method_not_allowed');
  });

  it('never forwards an empty path segment or a session path whose id is not of the contract\'s pattern: 400 JSON, nothing upstream', async () => {
    const b = await gateway();
    b.sim.clearRequests();
    for (const [method, path] of [['GET', '/sessions//changes'], ['GET', '/sessions//status'], ['POST', '/sessions//messages'], ['GET', '/sessions/a%20b'], ['POST', '/sessions/-x/pause'], ['GET', '/agents//x'], ['GET', '/%73essions/a%20b'], ['POST', '/%73essions/-x/pause'], ['GET', '/sessions/%zz'], ['GET', '/sessions%2Fbad%20id/changes'], ['DELETE', '/%73essions%2F%0d%0a'], ['POST', '/sessions%5C-x/messages']] as const) {
      const via = await api(`${b.url}/api/v2`, KEY_A, method, path);
      expect(via.status, `${method} ${path}`).toBe(400);
      expect(typeof via.body.error, `${method} ${path}`).toBe('string');
    }
    const encodedBase = await api(b.url, KEY_A, 'GET', '/api/v%32/sessions/a%20b');
    expect(encodedBase.status).toBe(400);
    const root = await api(b.url, KEY_A, 'GET', '/sessions//events');
    expect(root.status).toBe(400);
    expect(root.body.error).toMatch(/session id/);
    expect(b.sim.requests()).toEqual([]);
    // An encoded `/` the API itself takes (a skill's `h/` prefix, a resource key with slashes) goes on as sent.
    for (const path of ['/skills/h%2Fweb-search', '/sessions/s-1/resources/screenshots/run%2Fstep-1.png', '/agents/org%2Fmy-agent']) {
      await api(`${b.url}/api/v2`, KEY_A, 'GET', path);
      expect(b.sim.requests().at(-1)?.target, path).toBe(`/api/v2${path}`);
    }
  });

  it('never forwards a control character, a session path hidden behind `;` parameters, TRACE or a method override: 4xx JSON, nothing upstream', async () => {
    const b = await gateway();
    b.sim.createSession('traced', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    b.sim.clearRequests();
    for (const [method, path, status] of [
      ['GET', '/agents%00', 400],
      ['GET', '/sessions/traced%00/status', 400],
      ['GET', '/files/a%0d%0ab', 400],
      ['GET', '/files/a%7fb', 400],
      // A server that strips `;` parameters routes `sessions;x=1/…` as `sessions/…`: the id is judged as for `sessions/…`.
      ['GET', '/sessions;x=1/bad%20id', 400],
      ['POST', '/sessions;v=2/-x/pause', 400],
      ['GET', '/sessions/traced;x=1/status', 400],
    ] as const) {
      const via = await api(`${b.url}/api/v2`, KEY_A, method, path);
      expect(via.status, `${method} ${path}`).toBe(status);
      expect(typeof via.body.error, `${method} ${path}`).toBe('string');
    }
    // fetch() refuses to send TRACE itself: a raw request, with the caller's key that TRACE would echo.
    for (const path of ['/agents', '/sessions/traced']) {
      const res = await rawRequest(b.url, `TRACE /api/v2${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nConnection: close\r\n\r\n`);
      expect(res.status, path).toBe(405);
      expect(res.headers, path).toMatch(/^allow: GET, /im);
      expect(res.body).toMatch(/"code":"method_not_allowed"/);
      expect(res.body).not.toContain(KEY_A);
    }
    // A method asked for in a header (a POST tunnelling a DELETE) is refused, not sent on as a POST without it.
    for (const name of ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']) {
      const res = await rawRequest(b.url, `POST /api/v2/sessions/traced HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\n${name}: DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      expect(res.status, name).toBe(400);
      expect(res.body, name).toContain(`${name.toLowerCase()} is not forwarded`);
    }
    expect(b.sim.requests()).toEqual([]);
    // One that names the request's own method asks for nothing: the request goes on, without the header.
    const same = await rawRequest(b.url, `GET /api/v2/sessions/traced HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nX-HTTP-Method-Override: get\r\nConnection: close\r\n\r\n`);
    expect(same.status).toBe(200);
    expect(Object.keys(b.sim.requests()[0]!.headers)).not.toContain('x-http-method-override');
    b.sim.clearRequests();
    // A well-formed id behind `;` parameters goes on as sent (the upstream answers it as it reads it).
    await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions;x=1/traced/status');
    expect(b.sim.requests().map((r) => r.target)).toEqual(['/api/v2/sessions;x=1/traced/status']);
  });

  it('never forwards a target with dot segments (it could leave the API path upstream)', async () => {
    const b = await gateway();
    b.sim.clearRequests();
    for (const [target, status] of [['/api/v2/../x', 404], ['/api/v2/%2e%2e/x', 404], ['/api/v2/sessions/%2E/x', 400], ['/api/v2/a/..', 400], ['/api/v2/sessions/ok/resources/b/k%2F..%2F..%2Fx', 400], ['/api/v2/sessions/ok/resources/b/k%5C..%5Cx', 400],
      // Gateway audit, 7 Dec 2026: `;` parameters hid a dot segment from the check (`..;/` is `../` to a server that strips them).
      ['/api/v2/..;/admin', 400], ['/api/v2/agents/..;/..;/internal', 400], ['/api/v2/agents/.;/y', 400], ['/api/v2/agents/%2e%2e;x=1/y', 400], ['/api/v2/sessions/ok/..;/bad%20id', 400]] as const) {
      const res = await rawRequest(b.url, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(res.status, target).toBe(status);
    }
    expect(b.sim.requests()).toEqual([]);
  });

  it('never forwards a session path behind a segment that is empty once decoded or stripped of its parameters, nor a coding past chunked', async () => {
    // Target audit, 7 Dec 2026: `/api/v2/;/sessions/-x` reached the upstream, where a server that merges `//` reads `/sessions/-x`.
    const b = await gateway();
    b.sim.clearRequests();
    for (const target of ['/api/v2/%2Fsessions/-x', '/api/v2/%5Csessions/-x', '/api/v2/;/sessions/-x', '/api/v2/;x/sessions/bad%20id']) {
      const res = await rawRequest(b.url, `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nConnection: close\r\n\r\n`);
      expect(res.status, target).toBe(400);
    }
    // `gzip, chunked` would go on as the gzip bytes, under the caller's JSON content type.
    const gz = await rawRequest(b.url, `POST /api/v2/sessions/ok/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n`);
    expect(gz.status).toBe(400);
    expect(b.sim.requests()).toEqual([]);
    // The list's own trailing slash still goes on, and so does a resource key with an encoded leading or double slash.
    await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions/');
    await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions/s-1/resources/b/%2Fabs.png');
    await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions/s-1/resources/b/dir%2F%2Ffile.png');
    expect(b.sim.requests().map((r) => r.target)).toEqual(['/api/v2/sessions/', '/api/v2/sessions/s-1/resources/b/%2Fabs.png', '/api/v2/sessions/s-1/resources/b/dir%2F%2Ffile.png']);
  });

  it('forwards a target in absolute form (RFC 9112 section 3.2.2) by its path, as its own routes take it', async () => {
    // Gateway audit, 7 Dec 2026: refused as "not a plain path" on forwarded paths only.
    const b = await gateway();
    b.sim.clearRequests();
    const res = await rawRequest(b.url, `GET http://elsewhere.example/api/v2/sessions?size=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(200);
    expect(b.sim.requests().map((r) => r.target)).toEqual(['/api/v2/sessions?size=1']);
    // Its path is judged as any other's.
    const dotted = await rawRequest(b.url, `GET http://x/api/v2/agents/..;/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(dotted.status).toBe(400);
    // An empty authority: the router's URL parser takes `internal` for the host and routes `/api/v2/…` here; what
    // would be sent is `/internal/api/v2/…`, outside the API path (a review, 7 Dec 2026).
    const hostless = await rawRequest(b.url, `GET http:///internal/api/v2/sessions?size=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nConnection: close\r\n\r\n`);
    expect(hostless.status).toBe(400);
    expect(b.sim.requests()).toHaveLength(1);
    // A base path written with escapes of unreserved characters is the router's base path too: forwarded as written.
    const escaped = await rawRequest(b.url, `GET /api/v%32/sessions?size=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nConnection: close\r\n\r\n`);
    expect(escaped.status).toBe(200);
    expect(b.sim.requests().map((r) => r.target)).toEqual(['/api/v2/sessions?size=1', '/api/v%32/sessions?size=2']);
  });
});

describe('forwarding: limits and failures', () => {
  it('a Content-Length over PASSTHROUGH_MAX_BODY_BYTES is 413 at once, and the upstream sees nothing', async () => {
    const b = await gateway({ PASSTHROUGH_MAX_BODY_BYTES: '1000' });
    b.sim.createSession('limited', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    b.sim.clearRequests();
    const res = await api(`${b.url}/api/v2`, KEY_A, 'POST', '/sessions/limited/messages', { message: 'x'.repeat(2000) });
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ code: 'payload_too_large', error: expect.any(String) });
    expect(forwardedTo(b)).toEqual([]);
    // Under the limit it goes through.
    expect((await api(`${b.url}/api/v2`, KEY_A, 'POST', '/sessions/limited/messages', { message: 'hello' })).status).toBe(202);
  });

  it('a client that sends Expect: 100-continue with a body past the limit gets the 413 and no 100 Continue, so it uploads nothing; under the limit, 100 then the answer', async () => {
    // Audit, 7 Dec 2026: Node sent 100 Continue first and curl had uploaded 2.6 MB of an 11 MB body before the 413.
    const b = await gateway({ PASSTHROUGH_MAX_BODY_BYTES: '1000' });
    b.sim.createSession('expecting', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    b.sim.clearRequests();
    const { port } = new URL(b.url);
    const firstAnswer = (length: number, path = '/api/v2/sessions/expecting/messages') =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () =>
          socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`),
        );
        let text = '';
        socket.on('data', (d: Buffer) => {
          text += d.toString();
          if (text.includes('\r\n\r\n')) {
            socket.destroy();
            resolve(text);
          }
        });
        socket.on('error', reject);
        setTimeout(() => reject(new Error(`no answer: ${JSON.stringify(text)}`)), 5000);
      });
    expect(await firstAnswer(11 * 1024 * 1024)).toMatch(/^HTTP\/1\.1 413 /);
    expect(await firstAnswer(500)).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
    expect(forwardedTo(b)).toEqual([]);
    // A body another route takes, past the pass-through's cap: a multi-session POST /events of 2 KB still gets its 100
    // (a review: a client waiting for it got 408); a forwarded one of that size does not (each route its own bound).
    expect(await firstAnswer(2000, '/events')).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
    expect(await firstAnswer(2000)).toMatch(/^HTTP\/1\.1 413 /);
    // The path judged as routes see it, from an absolute-form target too (a review).
    expect(await firstAnswer(2000, `http://127.0.0.1:${port}/events`)).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
  });

  it('a chunked body (no length declared) is read whole first: past the limit 413 with nothing forwarded, under it forwarded', async () => {
    const b = await gateway({ PASSTHROUGH_MAX_BODY_BYTES: '4096' });
    b.sim.createSession('chunked', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    /** `{"message":"x…x"}` sent in 1 KB chunks 20 ms apart (a forward begun at once would be under way), no Content-Length. */
    const post = (kilobytes: number) => {
      const chunk = new TextEncoder().encode('x'.repeat(1024));
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent > 0) await new Promise((resolve) => setTimeout(resolve, 20));
          if (sent === 0) controller.enqueue(new TextEncoder().encode('{"message":"'));
          if (sent >= kilobytes) {
            controller.enqueue(new TextEncoder().encode('"}'));
            return controller.close();
          }
          sent++;
          controller.enqueue(chunk);
        },
      });
      return fetch(`${b.url}/api/v2/sessions/chunked/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' },
        body,
        duplex: 'half',
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
      } as RequestInit);
    };
    b.sim.clearRequests();
    const res = await post(16);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { code: string }).code).toBe('payload_too_large');
    // Not a byte of it reached the upstream: not even the request line.
    expect(forwardedTo(b)).toEqual([]);
    expect(b.sim.received('chunked')).toEqual([]);
    const small = await post(2);
    expect(small.status).toBe(202);
    expect(forwardedTo(b).map((r) => r.method)).toEqual(['POST']);
    expect(b.sim.received('chunked')).toHaveLength(1);
  });

  it('bodies without a length held at once share a cap (FORWARD_BUFFERED_BODIES whole bodies): past it 429, freed as they go', async () => {
    const cap = 4096;
    const b = await gateway({ PASSTHROUGH_MAX_BODY_BYTES: String(cap) });
    b.sim.createSession('held', { organisation: 'org-a', initialEvents: 1, imageBytes: 0 });
    /** A chunked upload that sends `bytes` and then stalls (never ends) until aborted. */
    const stalled = (bytes: number) => {
      const abort = new AbortController();
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('x'.repeat(bytes)));
        },
      });
      const res = fetch(`${b.url}/api/v2/sessions/held/messages`, { method: 'POST', headers: { authorization: `Bearer ${KEY_A}` }, body, duplex: 'half', signal: abort.signal } as RequestInit).catch((err: Error) => err);
      return { abort, res };
    };
    const held = range(FORWARD_BUFFERED_BODIES).map(() => stalled(cap - 100));
    await new Promise((r) => setTimeout(r, 500));
    const over = stalled(cap - 100);
    const refused = (await over.res) as Response;
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({ error: expect.stringMatching(/request bodies without a length/) });
    // One leaves: its share is free again, and a whole upload larger than what was left free goes through.
    held[0]!.abort.abort();
    await new Promise((r) => setTimeout(r, 300));
    const after = JSON.stringify({ message: 'y'.repeat(2000) });
    expect(after.length).toBeGreaterThan(FORWARD_BUFFERED_BODIES * cap - FORWARD_BUFFERED_BODIES * (cap - 100));
    const whole = await fetch(`${b.url}/api/v2/sessions/held/messages`, { method: 'POST', headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' }, body: new Blob([after]).stream(), duplex: 'half' } as RequestInit);
    expect(whole.status).toBe(202);
    for (const h of held) h.abort.abort();
    expect(b.sim.received('held')).toHaveLength(1);
  });

  it('forwarded requests take rate-limit tokens like the drop-ins: past the burst 429, nothing forwarded', async () => {
    const b = await gateway({ RATE_LIMIT_BURST: '2', RATE_LIMIT_PER_IP: '0.01' });
    b.sim.clearRequests();
    expect((await api(`${b.url}/api/v2`, KEY_A, 'GET', '/agents')).status).toBe(404);
    expect((await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions')).status).toBe(200);
    const refused = await api(`${b.url}/api/v2`, KEY_A, 'POST', '/sessions', { agent: 'x' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(b.sim.requests().map((r) => `${r.method} ${r.target}`)).toEqual(['GET /api/v2/agents', 'GET /api/v2/sessions']);
  });

  it('a request target over MAX_URL_BYTES is 414 and not forwarded', async () => {
    const b = await gateway({ MAX_URL_BYTES: '256' });
    b.sim.clearRequests();
    const res = await api(`${b.url}/api/v2`, KEY_A, 'GET', `/sessions?search=${'x'.repeat(300)}`);
    expect(res.status).toBe(414);
    expect(forwardedTo(b)).toEqual([]);
  });

  it('upstream unreachable: 502 JSON', async () => {
    const port = await freePort();
    const b = await startBridge({ UPSTREAM_URL: `http://127.0.0.1:${port}/api/v2` });
    bridges.push(b);
    const res = await api(b.url, KEY_A, 'GET', '/api/v2/sessions?status=running');
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(res.body).toMatchObject({ code: 'bad_gateway', error: expect.any(String) });
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    expect(metrics).toMatch(/pollcast_forward_errors_total\{reason="connect"\} 1/);
  });

  it('counts forwarded requests in /metrics by method and status class', async () => {
    const b = await gateway();
    await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions');
    await api(`${b.url}/api/v2`, undefined, 'GET', '/sessions');
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    expect(metrics).toMatch(/pollcast_forwarded_requests_total\{method="GET",status="2xx"\} 1/);
    expect(metrics).toMatch(/pollcast_forwarded_requests_total\{method="GET",status="4xx"\} 1/);
  });
});

describe('forwarding: modes and tokens', () => {
  it('JWT-only auth forwards nothing: 404 JSON and no upstream request', async () => {
    const b = await gateway({ AUTH: '', AUTH_JWT_SECRET: JWT_SECRET });
    b.sim.clearRequests();
    const res = await api(`${b.url}/api/v2`, KEY_A, 'POST', '/sessions', { agent: 'x' });
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('not_found');
    expect((await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions')).status).toBe(404);
    expect(b.sim.requests()).toEqual([]);
  });

  it('PASSTHROUGH=false turns it off with any auth; PASSTHROUGH=true with JWT auth forwards, but never the pollcast token', async () => {
    const off = await gateway({ PASSTHROUGH: 'false' });
    off.sim.clearRequests();
    expect((await api(`${off.url}/api/v2`, KEY_A, 'GET', '/sessions')).status).toBe(404);
    expect(off.sim.requests()).toEqual([]);

    const b = await gateway({ AUTH: '', AUTH_JWT_SECRET: JWT_SECRET, PASSTHROUGH: 'true' });
    const jwt = await token(['*']);
    const expired = await token(['*'], { exp: Math.floor(Date.now() / 1000) - 3600 });
    b.sim.clearRequests();
    const viaHeader = await rawHttp(`${b.url}/api/v2/sessions?status=running&access_token=${jwt}&size=2`, 'GET', {
      authorization: `Bearer ${jwt}`,
      cookie: `theme=dark; pollcast_token=${expired}; lang=fr`,
    });
    // The upstream sees no credential at all, and answers for itself.
    expect(viaHeader.status).toBe(401);
    const [seen] = forwardedTo(b);
    expect(seen!.target).toBe('/api/v2/sessions?status=running&size=2');
    expect(Object.keys(seen!.headers)).not.toContain('authorization');
    expect(seen!.headers.cookie).toEqual(['theme=dark; lang=fr']);
    expect(JSON.stringify(seen)).not.toContain(jwt.split('.')[2]);
    expect(JSON.stringify(seen)).not.toContain(expired.split('.')[2]);

    // Nor in any other header or query parameter (contract section 3: never forwarded, wherever it was put); a
    // foreign JWT and other values there go on as sent.
    const foreign = `${jwt.split('.').slice(0, 2).join('.')}.${'A'.repeat(43)}`;
    b.sim.clearRequests();
    await rawHttp(`${b.url}/api/v2/sessions?token=${jwt}&size=2&%FF=${jwt}&${expired}&other=${foreign}&x=%FF`, 'GET', {
      'x-api-key': jwt,
      'x-token': `Bearer ${expired}`,
      'x-pair': `t=${jwt}`,
      'x-json': JSON.stringify({ t: expired }),
      cookie: `session=${jwt}; keep=1`,
      'x-note': 'kept',
      'x-foreign': foreign,
    });
    const [other] = forwardedTo(b);
    expect(other!.target).toBe(`/api/v2/sessions?size=2&other=${foreign}&x=%FF`);
    for (const name of ['x-api-key', 'x-token', 'x-pair', 'x-json']) expect(Object.keys(other!.headers)).not.toContain(name);
    expect(other!.headers.cookie).toEqual(['keep=1']);
    expect(other!.headers['x-note']).toEqual(['kept']);
    expect(other!.headers['x-foreign']).toEqual([foreign]);
    expect(JSON.stringify(other)).not.toContain(jwt.split('.')[2]);
    expect(JSON.stringify(other)).not.toContain(expired.split('.')[2]);

    // Nor with a dot beside it, nor with its dots percent-encoded (a secrets audit, 7 Dec 2026: each went upstream).
    const encoded = jwt.replaceAll('.', '%2E');
    b.sim.clearRequests();
    await rawHttp(`${b.url}/api/v2/sessions?c=${jwt}.&d=.${expired}&t2=a.${jwt}.b&size=2`, 'GET', {
      'x-dotted': `${jwt}.`,
      'x-enc': encoded,
      cookie: `q=${encoded}; r=a.${jwt}.b; keep=1`,
    });
    const [dotted] = forwardedTo(b);
    expect(dotted!.target).toBe('/api/v2/sessions?size=2');
    for (const name of ['x-dotted', 'x-enc']) expect(Object.keys(dotted!.headers)).not.toContain(name);
    expect(dotted!.headers.cookie).toEqual(['keep=1']);
    expect(JSON.stringify(dotted)).not.toContain(jwt.split('.')[2]);
    expect(JSON.stringify(dotted)).not.toContain(expired.split('.')[2]);

    // Nor in the path, which cannot go without it (fuzz audit, 7 Dec 2026: forwarded, and echoed in the upstream's
    // 404): 400 naming the problem, nothing upstream. A foreign JWT there goes on.
    b.sim.clearRequests();
    for (const target of [`/api/v2/skills/${jwt}`, `/api/v2/sessions/x/resources/b/${expired}`, `/api/v2/files;t=${jwt}/a`]) {
      const inPath = await rawHttp(`${b.url}${target}`, 'GET', {});
      expect(inPath.status, target).toBe(400);
      expect(JSON.parse(inPath.body).error, target).toMatch(/path holds a pollcast access token/);
    }
    expect(b.sim.requests().filter((r) => !/\/(changes|status)(\?|$)/.test(r.target))).toEqual([]);
    expect((await rawHttp(`${b.url}/api/v2/skills/${foreign}`, 'GET', {})).status).toBe(404);
    expect(b.sim.requests().map((r) => r.target)).toContain(`/api/v2/skills/${foreign}`);

    // An upstream key in the same places is the caller's own: forwarded as is.
    b.sim.clearRequests();
    expect((await api(`${b.url}/api/v2`, KEY_A, 'GET', '/sessions?size=2')).status).toBe(200);
    expect(forwardedTo(b)[0]!.headers.authorization).toEqual([`Bearer ${KEY_A}`]);
  });
});

describe('forwarding: HTTP/2 callers', () => {
  it('an answer head HTTP/2 cannot carry as is is adapted or refused with 502, never a crash: repeated single-value headers, a status past 599, a 204 with a length', async () => {
    // An upstream (behind its own proxy, say) that answers what HTTP/1.1 carries and HTTP/2 does not.
    const upstream = createServer((req, res) => {
      if (req.url?.endsWith('/dup')) {
        res.setHeader('x-content-type-options', ['nosniff', 'nosniff']);
        res.setHeader('content-type', ['application/json', 'application/json; charset=utf-8']);
        res.setHeader('date', [new Date().toUTCString(), new Date().toUTCString()]);
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.end('{"ok":true}');
      } else if (req.url?.endsWith('/s600')) {
        res.writeHead(600, { 'content-type': 'text/plain' }).end('six hundred');
      } else if (req.url?.endsWith('/cookies')) {
        // Two 60 KB cookies (120 KB of head): past Node's default HTTP/2 send bound, each field within HTTP/2's.
        res.writeHead(200, { 'set-cookie': [`a=${'x'.repeat(60_000)}`, `b=${'y'.repeat(60_000)}`], 'content-type': 'text/plain' }).end('cookies');
      } else if (req.url?.endsWith('/cookie100k')) {
        res.writeHead(200, { 'set-cookie': `a=${'x'.repeat(100_000)}`, 'content-type': 'text/plain' }).end('one big cookie');
      } else {
        res.writeHead(204, { 'content-length': '5' }).end();
      }
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const b = await startBridge({ UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api/v2` });
    bridges.push(b);
    const session = h2connect(b.url);
    try {
      const dup = h2request(session, '/api/v2/hdr/dup');
      const head = await dup.headers;
      expect(head[':status']).toBe(200);
      expect(head['x-content-type-options']).toBe('nosniff');
      expect(head['content-type']).toBe('application/json');
      expect(head['set-cookie'], 'a header HTTP/2 may repeat stays repeated').toEqual(['a=1', 'b=2']);
      expect(JSON.parse(await dup.done(CALL_TIMEOUT_MS))).toEqual({ ok: true });

      const s600 = h2request(session, '/api/v2/hdr/s600');
      expect((await s600.headers)[':status']).toBe(502);
      expect(JSON.parse(await s600.done(CALL_TIMEOUT_MS))).toMatchObject({ code: 'bad_gateway', error: expect.stringMatching(/status 600/) });

      const noContent = h2request(session, '/api/v2/hdr/204');
      const noContentHead = await noContent.headers;
      expect(noContentHead[':status']).toBe(204);
      expect(noContentHead['content-length']).toBeUndefined();
      await noContent.done(CALL_TIMEOUT_MS);

      // A review, 7 Dec 2026: heads of 64 to 256 KiB reset the stream with no answer. A large head goes through; a
      // field HTTP/2 cannot carry is the 502 that says so, and the connection goes on.
      const big = h2connect(b.url, { settings: { maxHeaderListSize: 1 << 20 } });
      big.on('error', () => {});
      try {
        const cookies = h2request(big, '/api/v2/hdr/cookies');
        const cookiesHead = await cookies.headers;
        expect(cookiesHead[':status']).toBe(200);
        expect((cookiesHead['set-cookie'] as unknown as string[]).map((c) => c.length)).toEqual([60_002, 60_002]);
        expect(await cookies.done(CALL_TIMEOUT_MS)).toBe('cookies');
        const huge = h2request(big, '/api/v2/hdr/cookie100k');
        expect((await huge.headers)[':status']).toBe(502);
        expect(JSON.parse(await huge.done(CALL_TIMEOUT_MS))).toMatchObject({ code: 'bad_gateway', error: expect.stringMatching(/set-cookie header value of \d+ bytes/) });
        expect((await h2request(big, '/api/v2/hdr/204').headers)[':status']).toBe(204);
      } finally {
        big.close();
      }

      // HTTP/1.1 carries the status as it is; the process is still up for both.
      const h1 = await rawHttp(`${b.url}/api/v2/hdr/s600`, 'GET', {});
      expect([h1.status, h1.body]).toEqual([600, 'six hundred']);
      expect((await fetch(`${b.url}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      expect(metrics).toMatch(/pollcast_forward_errors_total\{reason="head"\} 2/);
      // A status past 599 is counted as `other`, not a class of its own (once over h2c, once over HTTP/1.1).
      expect(metrics).toMatch(/pollcast_forwarded_requests_total\{method="GET",status="other"\} 2/);
    } finally {
      session.close();
      upstream.close();
    }
  });


  it('an h2c caller gets forwarded answers, bodies included, as an HTTP/1.1 caller does', async () => {
    const b = await gateway();
    b.sim.createSession('h2', { organisation: 'org-a', initialEvents: 2, imageBytes: 0 });
    const session = h2connect(b.url);
    try {
      const list = h2request(session, '/api/v2/sessions?status=running&status=pending', { authorization: `Bearer ${KEY_A}` });
      const listHeaders = await list.headers;
      expect(listHeaders[':status']).toBe(200);
      expect(JSON.parse(await list.done(CALL_TIMEOUT_MS))).toMatchObject({ total: 1, items: [expect.objectContaining({ id: 'h2' })] });
      expect(forwardedTo(b).at(-1)!.target).toBe('/api/v2/sessions?status=running&status=pending');

      const body = JSON.stringify({ message: 'over h2c' });
      const post = h2request(session, '/api/v2/sessions/h2/messages', { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' }, body);
      expect((await post.headers)[':status']).toBe(202);
      await post.done(CALL_TIMEOUT_MS);
      expect(b.sim.received('h2')).toEqual([expect.objectContaining({ route: 'messages', bytes: Buffer.byteLength(body) })]);

      const redirect = h2request(session, '/api/v2/sessions/h2/resources/b/k.png', { authorization: `Bearer ${KEY_A}` });
      const head = await redirect.headers;
      expect(head[':status']).toBe(302);
      expect(head.location).toMatch(/^https:\/\/resources\.example\.invalid\/b\/k\.png\?/);
      await redirect.done(CALL_TIMEOUT_MS);

      // A method HTTP/1.1's parser would refuse (HTTP/2 takes any token): 400 JSON here, nothing upstream.
      const before = forwardedTo(b).length;
      for (const method of ['BREW', 'get']) {
        const odd = h2request(session, '/api/v2/sessions', { ':method': method, authorization: `Bearer ${KEY_A}` });
        expect((await odd.headers)[':status'], method).toBe(400);
        expect(JSON.parse(await odd.done(CALL_TIMEOUT_MS)).error, method).toMatch(/is not an HTTP method/);
      }
      expect(forwardedTo(b).length).toBe(before);
    } finally {
      session.close();
    }
  });
});
