/** A test upstream whose changes side lags `/status`, as a read replica would. */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An upstream whose changes endpoint reads a replica `lagMs` behind: an event is visible there only `lagMs` after the
 * proxy first saw it, and while any is hidden the body says the session still runs. `/status` passes straight through.
 */
export async function lagProxy(upstream: string, lagMs: number): Promise<{ server: Server; url: string }> {
  const base = new URL(upstream);
  const firstSeen = new Map<number, number>();
  const server = createServer((req, res) => {
    // The upstream or the caller gone (a test closing): the answer is dropped, not left as an unhandled rejection.
    answer(req.url!, req.method ?? 'GET', res).catch(() => res.destroy());
  });
  const answer = async (target: string, method: string, res: ServerResponse) => {
    const url = new URL(target, base);
    const pass = async (target: URL) => fetch(target, { method, headers: { accept: 'application/json' } });
    if (!url.pathname.endsWith('/changes')) {
      const r = await pass(url);
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
      res.end(Buffer.from(await r.arrayBuffer()));
      return;
    }
    const from = Number(url.searchParams.get('from_index') ?? 0);
    const deadline = Date.now() + Number(url.searchParams.get('wait_for_seconds') ?? 0) * 1000;
    url.searchParams.set('wait_for_seconds', '0');
    for (;;) {
      const r = await pass(url);
      if (r.status === 200) {
        const body = (await r.json()) as { new_events: unknown[]; status: string; finished_at: string | null; answer: unknown };
        const now = Date.now();
        body.new_events.forEach((_, i) => firstSeen.set(from + i, firstSeen.get(from + i) ?? now));
        const visible = body.new_events.findIndex((_, i) => now - firstSeen.get(from + i)! < lagMs);
        if (visible >= 0) {
          body.new_events = body.new_events.slice(0, visible);
          Object.assign(body, { status: 'running', finished_at: null, answer: null });
        }
        if (body.new_events.length > 0) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
          return;
        }
      } else if (r.status !== 204) {
        res.writeHead(r.status, { 'content-type': 'application/json' });
        res.end(await r.text());
        return;
      }
      if (Date.now() >= deadline) {
        res.writeHead(204).end();
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${base.pathname}` };
}
