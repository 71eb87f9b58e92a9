/**
 * A pass-through HTTP proxy in front of the simulator that counts, per
 * session, the long-polls in flight: changes calls with wait_for_seconds > 0,
 * which only a session's loop makes. History pages for readers behind the
 * buffer are read with wait 0 while the loop long-polls, and in a cluster
 * other instances may so read a range Redis lost: the simulator counts those
 * as changes calls in flight too, this does not, so "one loop per session" is
 * checked exactly.
 */
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The running proxy. */
export interface LongPollWatch {
  readonly url: string;
  /** Most long-polls of `session` in flight at once so far. */
  maxInFlight(session: string): number;
  close(): Promise<void>;
}

/** Starts a proxy to `target` (an http:// base URL) on a free loopback port. */
export async function watchLongPolls(target: string): Promise<LongPollWatch> {
  const upstream = new URL(target);
  const agent = new Agent({ keepAlive: true });
  const now = new Map<string, number>();
  const most = new Map<string, number>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', upstream);
    const session = /\/sessions\/([^/]+)\/changes$/.exec(url.pathname)?.[1];
    const counted = session !== undefined && Number(url.searchParams.get('wait_for_seconds') ?? 0) > 0 ? decodeURIComponent(session) : null;
    if (counted !== null) {
      const n = (now.get(counted) ?? 0) + 1;
      now.set(counted, n);
      most.set(counted, Math.max(most.get(counted) ?? 0, n));
    }
    let finished = false;
    const up = request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      // A fault that kills the simulator's socket mid-body must reach pollcast as the same failure.
      answer.on('aborted', () => res.destroy());
      answer.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    res.on('close', () => {
      if (finished) return;
      finished = true;
      up.destroy();
      if (counted !== null) now.set(counted, (now.get(counted) ?? 1) - 1);
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    maxInFlight: (session) => most.get(session) ?? 0,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
