/** A real HTTP/2 client (node:http2) for the h2c and TLS tests: requests on one connection, read to the end or held open. */
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';

/** One HTTP/2 request on a session, its headers and its body as it arrives. */
export interface H2Request {
  stream: ClientHttp2Stream;
  headers: Promise<IncomingHttpHeaders>;
  /** Body text so far. */
  text(): string;
  /** Resolves with the whole body once the server ends the stream (bounded). */
  done(timeoutMs?: number): Promise<string>;
  /** Resolves once `predicate` holds on the body so far (bounded). */
  until(predicate: (text: string) => boolean, timeoutMs?: number): Promise<void>;
}

/** Sends a request on `session` and collects its answer. */
export function h2request(session: ClientHttp2Session, path: string, headers: OutgoingHttpHeaders = {}, body?: string): H2Request {
  const stream = session.request({ ':path': path, ':method': body === undefined ? 'GET' : 'POST', ...headers }, { endStream: body === undefined });
  if (body !== undefined) stream.end(body);
  let text = '';
  const waiters = new Set<() => void>();
  let ended = false;
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    text += d;
    for (const w of [...waiters]) w();
  });
  const finished = new Promise<void>((resolve) => {
    const end = () => {
      ended = true;
      for (const w of [...waiters]) w();
      resolve();
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  });
  const headersP = new Promise<IncomingHttpHeaders>((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('error', reject);
  });
  const wait = (predicate: () => boolean, timeoutMs: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      if (predicate()) return resolve();
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; body so far: ${text.slice(-300)}`));
      }, timeoutMs);
      waiters.add(check);
    });
  return {
    stream,
    headers: headersP,
    text: () => text,
    async done(timeoutMs = 20_000) {
      await wait(() => ended, timeoutMs, 'the end of the stream');
      await finished;
      return text;
    },
    until: (predicate, timeoutMs = 20_000) => wait(() => predicate(text), timeoutMs, 'a condition on the body'),
  };
}
