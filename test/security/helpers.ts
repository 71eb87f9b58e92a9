/**
 * Tools of the security tests: JWTs made with jose, raw HTTP over a socket
 * (for what fetch refuses to send), streams opened and held with fetch, and
 * the real CLI spawned as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type AddressInfo } from 'node:net';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { SignJWT } from 'jose';

/** A secret of the accepted length (AUTH_JWT_SECRET must be at least 32 bytes). */
export const JWT_SECRET = 'test-secret-0123456789abcdef-0123456789';

/** An HS256 token for `sessions`, valid for an hour unless `options` say otherwise (`exp: null`: no exp claim at all). */
export async function token(sessions: unknown, options: { secret?: string; exp?: number | string | null; nbf?: number | string; alg?: string } = {}): Promise<string> {
  const jwt = new SignJWT({ sessions }).setProtectedHeader({ alg: options.alg ?? 'HS256' }).setIssuedAt();
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? '1h');
  if (options.nbf !== undefined) jwt.setNotBefore(options.nbf);
  return jwt.sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

/** A parsed raw HTTP answer. */
export interface RawAnswer {
  status: number;
  headers: string;
  body: string;
  /** Everything received, for answers that are not HTTP at all. */
  raw: string;
}

/** Sends `request` verbatim over a new socket; resolves with what comes back before the server closes (bounded). */
export function rawRequest(baseUrl: string, request: string | Buffer, timeoutMs = 5000): Promise<RawAnswer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`));
    }, timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      const split = raw.indexOf('\r\n\r\n');
      const head = split === -1 ? raw : raw.slice(0, split);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: head, body: split === -1 ? '' : raw.slice(split + 4), raw });
    });
    socket.write(request);
  });
}

/** An open answer (a stream, usually) with its head read and its body still flowing. */
export interface HeldResponse {
  res: Response;
  status: number;
  /** Reads body text until `predicate` holds on all text so far (bounded). */
  readUntil(predicate: (text: string) => boolean, timeoutMs?: number): Promise<string>;
  close(): void;
}

/** GETs `url` with fetch and keeps the connection open until `close()`. */
export async function hold(url: string, headers: Record<string, string> = {}): Promise<HeldResponse> {
  const abort = new AbortController();
  const res = await fetch(url, { headers, signal: abort.signal });
  const reader = res.body?.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    res,
    status: res.status,
    async readUntil(predicate, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(text)) {
        if (!reader) throw new Error('no body');
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out; body so far: ${text.slice(0, 300)}`);
        let timer: NodeJS.Timeout | undefined;
        const next = await Promise.race([reader.read(), new Promise<null>((r) => (timer = setTimeout(() => r(null), left)))]);
        clearTimeout(timer);
        if (next === null) continue;
        if (next.done) break;
        text += decoder.decode(next.value, { stream: true });
      }
      return text;
    },
    close: () => abort.abort(),
  };
}

/** The sum of a bridge's `/metrics` samples whose line starts with `name` (labels included in `name` narrow it). */
export async function metric(b: { url: string }, name: string): Promise<number> {
  const text = await (await fetch(`${b.url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

/** The CLI, run from source. */
export const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

/** A finished CLI run. */
export interface CliExit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node src/cli.ts` with only `env` (plus PATH) and waits for it to exit (bounded; killed if it does not). */
export function runCli(env: Record<string, string>, args: string[] = [], timeoutMs = 10_000): Promise<CliExit> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`still running after ${timeoutMs} ms; stdout: ${stdout.slice(0, 500)} stderr: ${stderr.slice(0, 500)}`));
    }, timeoutMs);
    // 'close', not 'exit': at 'exit' the child's last writes may still be in the pipes.
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A CLI that is running: its URL once it listens, and everything it printed so far. */
export interface RunningCli {
  url: string;
  proc: ChildProcess;
  output(): string;
  /** Stops it with SIGTERM and waits for the exit (bounded). */
  stop(): Promise<number | null>;
}

/** Starts `node src/cli.ts` with only `env` (plus PATH), resolving once it logs that it listens. */
export function startCli(env: Record<string, string>, timeoutMs = 15_000): Promise<RunningCli> {
  const proc = spawn(process.execPath, [CLI], { env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  // 'close', not 'exit': output() after stop() holds everything the process wrote.
  const exited = new Promise<number | null>((r) => proc.once('close', (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`no listening line within ${timeoutMs} ms: ${out.slice(0, 1000)}`));
    }, timeoutMs);
    const check = () => {
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      proc.stdout.off('data', check);
      resolve({
        url: m[1]!,
        proc,
        output: () => out,
        async stop() {
          if (proc.exitCode !== null) return proc.exitCode;
          proc.kill('SIGTERM');
          const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
          const code = await exited;
          clearTimeout(t);
          return code;
        },
      });
    };
    proc.stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before listening: ${out.slice(0, 1000)}`));
    });
  });
}

/** An HTTP proxy to `origin` that holds each request carrying no `Authorization` for `delayMs` before passing it on. */
export async function startKeylessDelayProxy(origin: string, delayMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const proxy: Server = createServer((req, res) => {
    const go = () => {
      const up = httpRequest(new URL(req.url ?? '/', origin), { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (req.headers.authorization === undefined) setTimeout(go, delayMs);
    else go();
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    close: async () => {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    },
  };
}
