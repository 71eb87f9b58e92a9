/**
 * Pure Server-Sent Events wire encoding. Frames are encoded once to bytes and
 * the same Buffer is written to every subscriber.
 */

/** One SSE frame; `data` may hold newlines (it is split into several `data:` lines). */
export interface SseFrame {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
}

const LINE_BREAK = /\r\n|\r|\n/;

// A CR or LF inside `id` or `event` would end the field early and let the
// remainder be parsed as another field: refuse instead of emitting it.
function assertSingleLine(name: string, value: string): void {
  if (/[\r\n]/.test(value)) throw new TypeError(`SSE ${name} must not contain CR or LF`);
}

/** Encodes one frame as text, ending with the blank line that dispatches it. */
export function encodeFrameText(frame: SseFrame): string {
  let out = '';
  if (frame.event !== undefined) {
    assertSingleLine('event', frame.event);
    out += `event: ${frame.event}\n`;
  }
  if (frame.id !== undefined) {
    // The spec ignores ids containing NUL; a NUL would silently break resumption.
    if (frame.id.includes('\0')) throw new TypeError('SSE id must not contain NUL');
    assertSingleLine('id', frame.id);
    out += `id: ${frame.id}\n`;
  }
  if (frame.retry !== undefined) {
    if (!Number.isInteger(frame.retry) || frame.retry < 0) throw new TypeError('SSE retry must be a non-negative integer');
    out += `retry: ${frame.retry}\n`;
  }
  if (frame.data !== undefined) {
    for (const line of frame.data.split(LINE_BREAK)) out += `data: ${line}\n`;
  }
  return out + '\n';
}

/** Encodes one frame to bytes. */
export function encodeFrame(frame: SseFrame): Buffer {
  return Buffer.from(encodeFrameText(frame), 'utf8');
}

/** Encodes a comment line (ignored by EventSource, keeps proxies from timing out). */
export function encodeComment(text: string): Buffer {
  return Buffer.from(text.split(LINE_BREAK).map((l) => `: ${l}\n`).join('') + '\n', 'utf8');
}
