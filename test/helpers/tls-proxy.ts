/**
 * A TLS-terminating reverse proxy for the tests, standing in for nginx,
 * Caddy, Envoy or a cloud edge: HTTP/2 (and HTTP/1.1) over TLS to the client,
 * with a self-signed certificate made by the `openssl` CLI, and to pollcast
 * either cleartext HTTP/2 on one shared connection (h2c, as Envoy, Caddy or
 * Cloud Run speak it) or HTTP/1.1 per request (nginx's proxy_http_version 1.1).
 * Hop-by-hop headers are dropped both ways, as RFC 9110 §7.6.1 asks of a proxy.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, createSecureServer, type ClientHttp2Session, type Http2ServerRequest, type Http2ServerResponse, type Http2SecureServer } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';

/** Headers a proxy does not forward (connection-specific), plus HTTP/2 pseudo-headers. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host', 'http2-settings']);

/** A self-signed certificate for localhost and 127.0.0.1, or null when `openssl` is not there. */
export function selfSignedCert(): { key: Buffer; cert: Buffer } | null {
  const dir = mkdtempSync(join(tmpdir(), 'pollcast-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface TlsProxy {
  /** https://127.0.0.1:port */
  url: string;
  /** The certificate, for clients to trust. */
  cert: Buffer;
  /** Requests seen, with the HTTP version the client used. */
  requests: Array<{ path: string; httpVersion: string }>;
  /** TLS connections accepted from clients. */
  clientConnections(): number;
  /** Drops every client connection at once (a network cut). */
  dropClients(): void;
  close(): Promise<void>;
}

export interface TlsProxyOptions {
  /** How the proxy talks to pollcast. */
  backend: 'h2c' | 'http1';
  /** Extra routes the proxy answers itself (a test page). */
  pages?: Record<string, { type: string; body: string }>;
}

function forwardable(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !k.startsWith(':') && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

/** Starts the proxy in front of pollcast at `target` (http://host:port). */
export async function startTlsProxy(target: string, options: TlsProxyOptions): Promise<TlsProxy> {
  const tls = selfSignedCert();
  if (!tls) throw new Error('openssl is needed to make the test certificate');
  let backend: ClientHttp2Session | null = null;
  const h2c = (): ClientHttp2Session => {
    if (!backend || backend.closed || backend.destroyed) {
      backend = connect(target);
      backend.on('error', () => {});
    }
    return backend;
  };
  const requests: TlsProxy['requests'] = [];
  const sockets = new Set<TLSSocket>();
  let accepted = 0;
  const server: Http2SecureServer = createSecureServer({ key: tls.key, cert: tls.cert, allowHTTP1: true }, (req: Http2ServerRequest, res: Http2ServerResponse) => {
    requests.push({ path: req.url, httpVersion: req.httpVersion });
    const page = options.pages?.[req.url.split('?')[0]!];
    if (page) {
      res.writeHead(200, { 'content-type': page.type, 'cache-control': 'no-store' });
      res.end(page.body);
      return;
    }
    const headers = { ...forwardable(req.headers), 'x-forwarded-for': req.socket.remoteAddress ?? '' };
    const reply = (status: number, replyHeaders: IncomingHttpHeaders) => {
      if (res.headersSent) return;
      res.writeHead(status, forwardable(replyHeaders));
      // An SSE answer must not wait for its first chunk (an HTTP/1.1 client would).
      (res as unknown as { flushHeaders(): void }).flushHeaders();
    };
    if (options.backend === 'h2c') {
      const up = h2c().request({ ':method': req.method, ':path': req.url, ...headers }, { endStream: req.method === 'GET' || req.method === 'HEAD' });
      up.on('response', (h) => reply(Number(h[':status']), h));
      up.on('data', (d: Buffer) => res.write(d));
      up.on('end', () => res.end());
      up.on('error', () => res.destroy());
      if (req.method !== 'GET' && req.method !== 'HEAD') req.pipe(up);
      res.on('close', () => up.close());
      return;
    }
    const { hostname, port } = new URL(target);
    const up = httpRequest({ host: hostname, port, method: req.method, path: req.url, headers: { ...headers, host: `${hostname}:${port}` } }, (upRes) => {
      reply(upRes.statusCode ?? 502, upRes.headers);
      upRes.on('data', (d: Buffer) => res.write(d));
      upRes.on('end', () => res.end());
      upRes.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    if (req.method !== 'GET' && req.method !== 'HEAD') req.pipe(up);
    else up.end();
    res.on('close', () => up.destroy());
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('sessionError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `https://127.0.0.1:${port}`,
    cert: tls.cert,
    requests,
    clientConnections: () => accepted,
    dropClients() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      (backend as ClientHttp2Session | null)?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
