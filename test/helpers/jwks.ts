/**
 * A local identity provider for token tests: a real node:http server
 * publishing a JWKS (keys from jose), counting its requests, whose key set
 * can be rotated and which can be stopped.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload, type CryptoKey } from 'jose';

/** A signing key with its published half. */
export interface TestKey {
  kid: string;
  alg: 'RS256' | 'ES256' | 'EdDSA';
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

/** Makes a key pair for `alg` and its JWK (with `kid`, `alg`, `use`). */
export async function makeKey(alg: TestKey['alg'], kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, jwk };
}

/** Signs `claims` with `key` (its kid in the header); exp one hour ahead unless given. */
export function sign(key: TestKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).setIssuedAt();
  if (claims.exp === undefined) jwt.setExpirationTime('1h');
  return jwt.sign(key.privateKey);
}

/** The running JWKS endpoint. */
export interface JwksServer {
  url: string;
  /** Requests it answered so far. */
  readonly requests: number;
  /** Replaces the published keys. */
  publish(keys: TestKey[]): void;
  /** While true, requests are taken but never answered (an endpoint that hangs). */
  stall(on: boolean): void;
  /** Stops listening and drops open connections (the endpoint is down). */
  close(): Promise<void>;
}

/** Starts a JWKS endpoint publishing `keys` at /.well-known/jwks.json on 127.0.0.1, port 0. */
export async function startJwksServer(keys: TestKey[]): Promise<JwksServer> {
  let published = keys;
  let requests = 0;
  let stalled = false;
  const server: Server = createServer((req, res) => {
    requests++;
    if (stalled) return;
    if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published.map((k) => k.jwk) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get requests() {
      return requests;
    },
    publish(next) {
      published = next;
    },
    stall(on) {
      stalled = on;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
