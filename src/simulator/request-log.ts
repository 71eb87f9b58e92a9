import type { IncomingMessage } from 'node:http';
import type { LoggedRequest } from './types.ts';

/** Requests kept by the log, newest last; older ones are forgotten (tests look at the last few). */
export const REQUEST_LOG_MAX = 500;

/** A bounded log of the API requests received (the control API excluded), for tests that check what a proxy forwarded. */
export class RequestLog {
  readonly #entries: LoggedRequest[] = [];

  record(req: IncomingMessage): void {
    const headers: Record<string, string[]> = {};
    const raw = req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = (raw[i] as string).toLowerCase();
      (headers[name] ??= []).push(raw[i + 1] as string);
    }
    this.#entries.push({ method: req.method ?? '', target: req.url ?? '', headers });
    if (this.#entries.length > REQUEST_LOG_MAX) this.#entries.shift();
  }

  all(): LoggedRequest[] {
    return structuredClone(this.#entries);
  }

  clear(): void {
    this.#entries.length = 0;
  }
}
