import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SimContext } from './context.ts';
import { CONTROL_PREFIX, handleControl } from './control.ts';
import { sendError } from './respond.ts';
import { handleSessionsApi } from './sessions-api.ts';

/** The path below `/_sim/`, which answers at the origin root and under the API base (so `${sim.url}/_sim/` works in both dialects). */
function controlPathOf(basePath: string, pathname: string): string | undefined {
  if (pathname.startsWith(CONTROL_PREFIX)) return pathname.slice(CONTROL_PREFIX.length);
  if (basePath !== '' && pathname.startsWith(`${basePath}${CONTROL_PREFIX}`)) return pathname.slice(basePath.length + CONTROL_PREFIX.length);
  return undefined;
}

/**
 * The path below the API base, decoded, or undefined when the request is outside it (then 404).
 * Decoded before routing, as the real API's server (uvicorn + Starlette) routes: `/sessions%2Fs-1/pause`
 * is `/sessions/s-1/pause` there, and `/sessions/a%2Fb/status` no session's path.
 */
function apiPathOf(basePath: string, pathname: string): string | undefined {
  const decoded = decodeURIComponent(pathname);
  if (basePath === '') return decoded;
  return decoded.startsWith(`${basePath}/`) ? decoded.slice(basePath.length) : undefined;
}

function handle(ctx: SimContext, req: IncomingMessage, res: ServerResponse): void {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://simulator.invalid');
  } catch {
    return sendError(res, 400, 'malformed request target');
  }
  try {
    const controlPath = controlPathOf(ctx.dialect.basePath, url.pathname);
    if (controlPath !== undefined) {
      handleControl(ctx, req, res, controlPath).catch((error: unknown) => sendError(res, 500, `internal error: ${String(error)}`));
      return;
    }
    ctx.requestLog.record(req);
    let apiPath: string | undefined;
    try {
      apiPath = apiPathOf(ctx.dialect.basePath, url.pathname);
    } catch {
      return sendError(res, 400, 'malformed path');
    }
    handleSessionsApi(ctx, req, res, url, apiPath);
  } catch (error) {
    sendError(res, 500, `internal error: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Creates the node:http server (node:http rather than a framework, so resets and short bodies are exact). */
export function createSimServer(ctx: SimContext): Server {
  return createServer((req, res) => handle(ctx, req, res));
}

/** Listens and resolves with the base URL (no trailing slash); wildcard hosts map to loopback. */
export function listen(server: Server, port: number, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address() as AddressInfo;
      let shown = address.address;
      if (shown === '0.0.0.0') shown = '127.0.0.1';
      if (shown === '::') shown = '::1';
      resolve(`http://${shown.includes(':') ? `[${shown}]` : shown}:${address.port}`);
    });
  });
}

/** Stops accepting, destroys every open socket (idle keep-alive ones included) and resolves once closed. */
export function shutdown(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
