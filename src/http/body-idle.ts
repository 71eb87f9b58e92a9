/**
 * A request body that stops arriving: the routes that read one (forwarding,
 * `POST /events`) refuse it with 408 once no byte came for
 * BODY_TIMEOUT_SECONDS, so a stalled upload holds neither a connection nor
 * the bytes buffered so far for good.
 */
import type { Readable } from 'node:stream';

/**
 * Calls `onIdle` once, when no byte of `incoming` arrived for `idleMs` while
 * it was flowing: time it spends paused (its reader, the upstream, is behind)
 * is not the client's. Returns the function that stops watching; the end or
 * close of `incoming` stops it too.
 */
export function watchBodyIdle(incoming: Readable, idleMs: number, onIdle: () => void): () => void {
  let last = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const onData = (): void => {
    last = performance.now();
  };
  const stop = (): void => {
    clearTimeout(timer);
    incoming.off('data', onData).off('end', stop).off('close', stop);
  };
  const check = (): void => {
    const now = performance.now();
    if (incoming.readableFlowing === false) last = now;
    const left = last + idleMs - now;
    if (left > 0) {
      timer = setTimeout(check, left);
      return;
    }
    stop();
    onIdle();
  };
  incoming.on('data', onData).once('end', stop).once('close', stop);
  timer = setTimeout(check, idleMs);
  return stop;
}
