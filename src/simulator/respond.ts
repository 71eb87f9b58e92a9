import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Fault } from './types.ts';

/** Faults that replace the whole answer, decided before the request is looked at. */
export type ImmediateFault = Extract<Fault, { kind: 'http' | 'rate-limit' | 'reset' | 'hang' | 'no-change' }>;
/** Faults that spoil the bytes of an otherwise valid 200 answer. */
export type BodyFault = Extract<Fault, { kind: 'slow-body' | 'invalid-json' | 'truncated' }>;

/** Slow bodies are cut into this many pieces unless the fault says otherwise. */
const DEFAULT_SLOW_CHUNKS = 5;

/** Responses the server holds open (long-polls, hangs, slow bodies), so close() can end them. */
export class HeldRequests {
  readonly #cancels = new Set<() => void>();

  /** Registers `cancel` until `res` closes; `cancel` must end the response and clear its timers. */
  hold(res: ServerResponse, cancel: () => void): void {
    this.#cancels.add(cancel);
    res.once('close', () => this.#cancels.delete(cancel));
  }

  get size(): number {
    return this.#cancels.size;
  }

  cancelAll(): void {
    for (const cancel of [...this.#cancels]) cancel();
    this.#cancels.clear();
  }
}

/** Writes a complete JSON answer with Content-Length. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** Writes `{"error": message}`. */
export function sendError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: message }, headers);
}

/** Writes 204 No Content. */
export function sendNoContent(res: ServerResponse): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(204, { 'cache-control': 'no-store' });
  res.end();
}

/** True for faults handled by serveImmediateFault. */
export function isImmediateFault(fault: Fault): fault is ImmediateFault {
  return fault.kind === 'http' || fault.kind === 'rate-limit' || fault.kind === 'reset' || fault.kind === 'hang' || fault.kind === 'no-change';
}

/** Serves a fault that does not need the session's state. */
export function serveImmediateFault(fault: ImmediateFault, req: IncomingMessage, res: ServerResponse, held: HeldRequests): void {
  switch (fault.kind) {
    case 'http':
      if (fault.detail !== undefined) sendJson(res, fault.status, { detail: fault.detail });
      else sendError(res, fault.status, fault.message ?? `simulated ${fault.status}`);
      return;
    case 'rate-limit':
      sendError(res, 429, 'rate limited (simulated)', { 'retry-after': String(fault.retryAfterSeconds) });
      return;
    case 'reset':
      req.socket.destroy();
      return;
    case 'hang':
      // Headers are never sent either, so the client cannot tell a hang from a slow server.
      held.hold(res, () => res.destroy());
      return;
    case 'no-change':
      sendNoContent(res);
      return;
  }
}

/** The body fault among `fault`, if it is one (the answer goes out, spoiled). */
export function bodyFaultOf(fault: Fault | undefined): BodyFault | undefined {
  return fault && (fault.kind === 'slow-body' || fault.kind === 'invalid-json' || fault.kind === 'truncated') ? fault : undefined;
}

/** The 200 body as the fault leaves it: a `patch` fault overrides top-level fields. */
export function patched(body: object, fault: Fault | undefined): object {
  return fault?.kind === 'patch' ? { ...body, ...structuredClone(fault.body) } : body;
}

/** Writes a 200 JSON answer spoiled by `fault`: slowly, cut short, or not JSON at all. */
export function sendFaultyBody(fault: BodyFault, res: ServerResponse, body: unknown, held: HeldRequests): void {
  if (res.headersSent || res.destroyed) return;
  const bytes = Buffer.from(fault.kind === 'invalid-json' ? '{"status": running, new_events: [<html>502</html>' : JSON.stringify(body));
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(bytes.length), 'cache-control': 'no-store' });
  switch (fault.kind) {
    case 'invalid-json':
      res.end(bytes);
      return;
    case 'truncated':
      // Content-Length promises the whole body; the socket dies after half, so the client sees a short read.
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => res.destroy());
      return;
    case 'slow-body':
      writeSlowly(res, bytes, fault.chunks ?? DEFAULT_SLOW_CHUNKS, fault.chunkDelayMs, held);
      return;
  }
}

function writeSlowly(res: ServerResponse, bytes: Buffer, chunks: number, delayMs: number, held: HeldRequests): void {
  const size = Math.max(1, Math.ceil(bytes.length / chunks));
  let offset = 0;
  let timer: NodeJS.Timeout | undefined;
  const writeNext = (): void => {
    timer = undefined;
    if (res.destroyed) return;
    const end = Math.min(bytes.length, offset + size);
    const piece = bytes.subarray(offset, end);
    offset = end;
    if (offset >= bytes.length) {
      res.end(piece);
      return;
    }
    res.write(piece);
    timer = setTimeout(writeNext, delayMs);
  };
  held.hold(res, () => {
    if (timer !== undefined) clearTimeout(timer);
    res.destroy();
  });
  res.once('close', () => {
    if (timer !== undefined) clearTimeout(timer);
  });
  writeNext();
}
