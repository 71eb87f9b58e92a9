/**
 * A TCP proxy in front of a server whose answers reach each client at a
 * bounded rate (a slow or congested link): what the client sends goes
 * through at once, what the server sends is released `bytesPerSecond` per
 * connection. Each connection has its own budget, as separate TCP flows
 * share a link.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export interface ThrottleProxy {
  readonly port: number;
  /**
   * Stops passing the server's answers to the connections open now whose requests so far match `which` (their
   * bytes as text): a stalled flow, the connection itself kept up.
   */
  stall(which: (sent: string) => boolean): number;
  close(): Promise<void>;
}

const SLICE_MS = 20;

export async function startThrottleProxy(targetPort: number, bytesPerSecond: number): Promise<ThrottleProxy> {
  const sockets = new Set<Socket>();
  const flows = new Set<{ sent: string; stalled: boolean }>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client).add(upstream);
    const flow = { sent: '', stalled: false };
    flows.add(flow);
    client.on('data', (d: Buffer) => (flow.sent = (flow.sent + d.toString('latin1')).slice(-100_000)));
    const queue: Buffer[] = [];
    const perSlice = Math.max(1, Math.floor((bytesPerSecond * SLICE_MS) / 1000));
    const timer = setInterval(() => {
      if (flow.stalled) return;
      let budget = perSlice;
      while (budget > 0 && queue.length > 0) {
        const head = queue[0]!;
        const part = head.subarray(0, budget);
        client.write(part);
        budget -= part.length;
        if (part.length === head.length) queue.shift();
        else queue[0] = head.subarray(part.length);
      }
    }, SLICE_MS);
    upstream.on('data', (d: Buffer) => queue.push(d));
    client.pipe(upstream);
    const end = () => {
      clearInterval(timer);
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      flows.delete(flow);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    stall(which) {
      let n = 0;
      for (const f of flows) if (which(f.sent)) (f.stalled = true), n++;
      return n;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
