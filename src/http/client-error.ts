/**
 * Requests Node's HTTP parser refuses before any route sees them (headers past
 * MAX_HEADER_BYTES, malformed request lines, header timeouts) get the same
 * JSON error shape as every other refusal instead of a bare status line.
 */
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** How long a refused connection may take to flush its answer before it is destroyed (ms). */
export const CLIENT_ERROR_LINGER_MS = 1000;

/** Status and stable code for a parser error code; anything unknown is a 400. */
function answerFor(code: string | undefined): [number, string, string, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large', 'headers_too_large', 'request line and headers larger than the server accepts (MAX_HEADER_BYTES)'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'Request Timeout', 'request_timeout', 'request headers did not arrive in time'];
    default:
      return [400, 'Bad Request', 'bad_request', 'malformed HTTP request'];
  }
}

/** Answers parser errors with JSON and closes the connection (a listener replaces Node's bare default). */
export function installClientErrorHandler(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex & { bytesWritten?: number }) => {
    // As Node's default: a reset peer or a connection that already got bytes gets nothing more.
    if (err.code === 'ECONNRESET' || !socket.writable || (socket.bytesWritten ?? 0) > 0) {
      socket.destroy();
      return;
    }
    const [status, reason, code, message] = answerFor(err.code);
    const body = JSON.stringify({ error: message, code });
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    // A peer that never reads must not keep the socket: end() flushes, destroy follows shortly.
    setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS).unref();
  });
}
