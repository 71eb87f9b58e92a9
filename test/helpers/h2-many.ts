/**
 * Opens N streams at once on ONE HTTP/2 connection (flow-control windows wide open) and prints, as one JSON line, how each
 * ended: `{"goaway": code|null, "results": [{"status", "rstCode", "bytes", "ends"}]}`. Run as its own process, so that
 * the server under test is read as a client on another machine would read it (not from the server's event loop).
 *
 *   node test/helpers/h2-many.ts http://127.0.0.1:PORT /sessions/ID/events 150
 */
import { connect } from 'node:http2';

const [origin, path, count] = process.argv.slice(2) as [string, string, string];
// Windows as large as the protocol allows (browsers open MBs): the server may send at once, and what it has written
// waits in its HTTP/2 layer (counted against the connection's memory), not in each stream's own buffer.
const session = connect(origin, { settings: { initialWindowSize: 2 ** 31 - 1 } });
session.on('connect', () => session.setLocalWindowSize(2 ** 31 - 1));
let goaway: number | null = null;
session.on('goaway', (code: number) => (goaway = code));
session.on('error', () => {});
let answeredCount = 0;
let allAnswered: () => void = () => {};
const answered = new Promise<void>((resolve) => (allAnswered = resolve));
const results = await Promise.all(
  Array.from({ length: Number(count) }, () =>
    new Promise<{ status: number | null; rstCode: number | undefined; bytes: number; ends: number }>((resolve) => {
      let status: number | null = null;
      let text = '';
      const stream = session.request({ ':path': path });
      const onAnswer = () => {
        if (++answeredCount === Number(count)) allAnswered();
      };
      stream.once('response', onAnswer);
      stream.once('close', () => {
        if (status === null) onAnswer();
      });
      stream.setEncoding('utf8');
      stream.on('response', (h) => (status = Number(h[':status'])));
      // Not read until every stream is answered or refused: what each holds queued on the server meanwhile counts.
      stream.pause();
      void answered.then(() => stream.resume());
      stream.on('data', (d: string) => (text += d));
      stream.on('error', () => {});
      const timer = setTimeout(() => stream.close(), 60_000);
      stream.on('close', () => {
        clearTimeout(timer);
        resolve({ status, rstCode: stream.rstCode, bytes: Buffer.byteLength(text), ends: text.match(/^event: end$/gm)?.length ?? 0 });
      });
    }),
  ),
);
process.stdout.write(`${JSON.stringify({ goaway, results })}\n`);
session.destroy();
