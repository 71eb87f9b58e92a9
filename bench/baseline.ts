/**
 * The comparison point: a minimal, naive SSE broadcaster on raw `node:http`.
 * One long-poll loop per session against the same upstream, and for every
 * event one `res.write` per subscriber (the frame string is built once per
 * event). Same event frame format as pollcast (`id: <index>` and one `data:`
 * line of `{"index","type","data","timestamp"}`); no replay, no status
 * updates, no slow-reader bound, one shared heartbeat timer.
 *
 *   UPSTREAM_URL=http://127.0.0.1:PORT PORT=0 node bench/baseline.ts
 *
 * Prints `{"baseline":"http://127.0.0.1:PORT"}` once listening.
 */
import { createServer, type ServerResponse } from 'node:http';
import { changesText, PAGE_SIZE, RETRY_MS } from './naive-long-poll.ts';

/** Comment line interval (ms), as pollcast's default 15 s. */
const HEARTBEAT_MS = 15_000;

interface UpstreamEvent {
  type: string;
  data: unknown;
  timestamp: string;
}

interface Changes {
  finished_at: string | null;
  new_events: UpstreamEvent[];
}

interface Session {
  subscribers: Set<ServerResponse>;
  next: number;
}

const sessions = new Map<string, Session>();

async function changes(id: string, from: number): Promise<{ status: number; body: Changes | null }> {
  const { status, text } = await changesText(id, from);
  return { status, body: status === 200 ? (JSON.parse(text) as Changes) : null };
}

function endAll(session: Session, frame: string): void {
  for (const res of session.subscribers) res.end(frame);
  session.subscribers.clear();
}

async function loop(id: string, session: Session): Promise<void> {
  for (;;) {
    let r;
    try {
      r = await changes(id, session.next);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      continue;
    }
    if (r.status === 404) return endAll(session, 'event: end\ndata: {"error":"not found"}\n\n');
    if (r.status !== 200 || r.body === null) {
      if (r.status !== 204) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      continue;
    }
    for (const event of r.body.new_events) {
      const index = session.next++;
      const frame = `id: ${index}\ndata: ${JSON.stringify({ index, type: event.type, data: event.data, timestamp: event.timestamp })}\n\n`;
      for (const res of session.subscribers) res.write(frame);
    }
    if (r.body.finished_at !== null && r.body.new_events.length < PAGE_SIZE) {
      return endAll(session, `event: end\ndata: ${JSON.stringify({ finished_at: r.body.finished_at, last_index: session.next - 1 })}\n\n`);
    }
  }
}

const server = createServer((req, res) => {
  const m = /^\/sessions\/([^/?]+)\/events/.exec(req.url ?? '');
  if (req.method !== 'GET' || !m) {
    res.writeHead(404).end();
    return;
  }
  const id = decodeURIComponent(m[1]!);
  let session = sessions.get(id);
  if (!session) {
    session = { subscribers: new Set(), next: 0 };
    sessions.set(id, session);
    void loop(id, session);
  }
  const s = session;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.write('retry: 2000\n\n');
  s.subscribers.add(res);
  res.on('close', () => s.subscribers.delete(res));
});
server.requestTimeout = 0;

setInterval(() => {
  for (const session of sessions.values()) for (const res of session.subscribers) res.write(': keep-alive\n\n');
}, HEARTBEAT_MS).unref();

server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ baseline: `http://127.0.0.1:${port}` })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
