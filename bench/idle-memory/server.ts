/**
 * One side of `bench/idle-memory/run.ts`: a simulator and pollcast (or a naive
 * node:http SSE server, or `raw`: a bare `net` server writing an SSE head, the
 * floor of what a connection costs in Node) in this process; on stdin `mem`
 * it answers its memory after a full GC, V8's heap spaces included.
 */
import { createServer, type ServerResponse } from 'node:http';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const target = process.argv[2];
const root = new URL('../../', import.meta.url);
const { createSimulator } = (await import(new URL('src/simulator/index.ts', root).href)) as typeof import('../../src/simulator/index.ts');
const sim = await createSimulator({ port: 0 });
sim.createSession('idle-1', { initialEvents: 1 });
let url: string;
if (target === 'pollcast') {
  const { loadConfig } = (await import(new URL('src/config.ts', root).href)) as typeof import('../../src/config.ts');
  const { silentLogger } = (await import(new URL('src/log.ts', root).href)) as typeof import('../../src/log.ts');
  const { startPollcast } = (await import(new URL('src/server.ts', root).href)) as typeof import('../../src/server.ts');
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'silent', MAX_STREAMS_PER_IP: '0', MAX_STREAMS_PER_SESSION: '0', RATE_LIMIT_PER_IP: '0' });
  url = (await startPollcast(config, { log: silentLogger(), processMetrics: false })).url;
} else if (target === 'raw') {
  // No node:http at all: the socket, its TCP handle and a Set entry.
  const { createServer: createNetServer } = await import('node:net');
  const open = new Set<import('node:net').Socket>();
  const server = createNetServer((socket) => {
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\nd\r\nretry: 2000\n\n\r\n');
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
} else {
  // The naive server of the benchmark's idle rows: a head, a retry line, a Set of responses.
  const open = new Set<ServerResponse>();
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    open.add(res);
    res.on('close', () => open.delete(res));
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

function memory() {
  gc();
  gc();
  const m = process.memoryUsage();
  const spaces: Record<string, number> = {};
  for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.space_size;
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, spaces };
}

process.stdout.write(`${JSON.stringify({ url })}\n`);
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d: string) => {
  if (d.startsWith('mem')) process.stdout.write(`${JSON.stringify(memory())}\n`);
});
