/** The pass-through pool alone: a silent upstream and a refused connection are failures of a named kind (pollcast answers 502). */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createForwarder, FORWARD_MAX_RESPONSE_HEAD_BYTES, ForwardError } from '../../src/upstream/forwarder.ts';
import { freePort } from '../helpers/harness.ts';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const ask = { method: 'GET', target: '/api/v2/sessions', headers: [], body: null };

describe('forwarder', () => {
  it('an upstream that accepts and stays silent fails as a timeout once the head is overdue', async () => {
    const origin = await listen(() => {
      // Never answers.
    });
    const forwarder = createForwarder(origin, { headersMs: 300 });
    try {
      const failure = await forwarder.forward({ ...ask, signal: AbortSignal.timeout(10_000) }).then(() => null, (e: unknown) => e);
      expect(failure).toBeInstanceOf(ForwardError);
      expect((failure as ForwardError).kind).toBe('timeout');
    } finally {
      await forwarder.close();
    }
  });

  it('a refused connection fails as connect; an answer comes back unparsed, redirects not followed', async () => {
    const refused = createForwarder(`http://127.0.0.1:${await freePort()}`);
    try {
      const failure = await refused.forward({ ...ask, signal: AbortSignal.timeout(10_000) }).then(() => null, (e: unknown) => e);
      expect((failure as ForwardError).kind).toBe('connect');
    } finally {
      await refused.close();
    }
    const origin = await listen((_req, res) => {
      res.writeHead(302, [['Location', '/elsewhere'], ['Set-Cookie', 'a=1'], ['Set-Cookie', 'b=2']].flat() as unknown as Record<string, string>);
      res.end('moved');
    });
    const forwarder = createForwarder(origin);
    try {
      const answer = await forwarder.forward({ ...ask, signal: AbortSignal.timeout(10_000) });
      expect(answer.status).toBe(302);
      expect(answer.headers).toEqual(expect.arrayContaining(['Location', '/elsewhere', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']));
      let text = '';
      for await (const chunk of answer.body) text += String(chunk);
      expect(text).toBe('moved');
    } finally {
      await forwarder.close();
    }
  });

  it('takes answer heads a browser takes (a 20 KB cookie, 1,500 cookies), not undici\'s 16 KiB; a head past its bound fails as head', async () => {
    // Audit, 7 Dec 2026: both reached curl directly and were a 502 "Headers Overflow Error" through pollcast.
    const origin = await listen((req, res) => {
      const cookies = req.url === '/big' ? [`a=${'x'.repeat(20_000)}`] : req.url === '/many' ? Array.from({ length: 1500 }, (_, i) => `c${i}=${'y'.repeat(10)}`) : [`z=${'w'.repeat(FORWARD_MAX_RESPONSE_HEAD_BYTES)}`];
      res.writeHead(200, { 'set-cookie': cookies, 'content-type': 'text/plain' });
      res.end('ok');
    });
    const forwarder = createForwarder(origin);
    try {
      for (const target of ['/big', '/many']) {
        const answer = await forwarder.forward({ ...ask, target, signal: AbortSignal.timeout(10_000) });
        expect(answer.status, target).toBe(200);
        const cookies = answer.headers.filter((_, i) => i % 2 === 0 && answer.headers[i]!.toLowerCase() === 'set-cookie');
        expect(cookies.length, target).toBe(target === '/big' ? 1 : 1500);
        for await (const chunk of answer.body) void chunk;
      }
      const failure = await forwarder.forward({ ...ask, target: '/huge', signal: AbortSignal.timeout(10_000) }).then(() => null, (e: unknown) => e);
      expect(failure).toBeInstanceOf(ForwardError);
      expect((failure as ForwardError).kind).toBe('head');
      expect((failure as ForwardError).message).toMatch(/answer head is larger/);
    } finally {
      await forwarder.close();
    }
  });
});
