/**
 * A request body that stops arriving: the routes that read one (forwarding,
 * `POST /events`) refuse it with 408 once no byte came for
 * BODY_TIMEOUT_SECONDS, so a stalled upload holds neither a connection nor
 * the bytes buffered so far for good.
 */
import type { Readable } from 'node:stream';

/**
 * Calls `onIdle` once, when `incoming` went `idleMs` without a byte while it
 * was flowing: the clock restarts at every byte and whenever the stream
 * resumes after a pause (its reader, the upstream, was behind: that time is
 * not the client's), and stands still while it is paused. Returns the
 * function that stops watching; the end or close of `incoming` stops it too.
 */
export function watchBodyIdle(incoming: Readable, idleMs: number, onIdle: () => void): () => void {
  let last = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(check, Math.max(0, last + idleMs - performance.now()));
  };
  const onData = (): void => {
    last = performance.now();
  };
  const onPause = (): void => clearTimeout(timer);
  const onResume = (): void => {
    last = performance.now();
    arm();
  };
  const stop = (): void => {
    clearTimeout(timer);
    incoming.off('data', onData).off('pause', onPause).off('resume', onResume).off('end', stop).off('close', stop);
  };
  function check(): void {
    const now = performance.now();
    if (incoming.readableFlowing === false) return;
    if (now - last < idleMs) return arm();
    stop();
    onIdle();
  }
  incoming.on('data', onData).on('pause', onPause).on('resume', onResume).once('end', stop).once('close', stop);
  arm();
  return stop;
}
