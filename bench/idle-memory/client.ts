/** Opens N idle SSE streams to `/sessions/idle-1/events` and prints `open` once every one has its head. */
import { connect, type Socket } from 'node:net';

const url = new URL(process.argv[2]!);
const streams = Number(process.argv[3]);
/** Opens between two short pauses, so the listen backlog is never overrun. */
const OPENS_PER_BATCH = 100;
const sockets: Socket[] = [];
let open = 0;
for (let i = 0; i < streams; i++) {
  const s = connect({ host: url.hostname, port: Number(url.port) });
  s.write(`GET /sessions/idle-1/events HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`);
  s.once('data', () => {
    if (++open === streams) process.stdout.write('open\n');
  });
  s.on('data', () => {});
  sockets.push(s);
  if (i % OPENS_PER_BATCH === 0) await new Promise((resolve) => setTimeout(resolve, 5));
}
setInterval(() => {}, 60_000);
