/**
 * A real shared cache in front of pollcast: Debian's nginx, started with a
 * generated configuration in a temporary directory (never as a service),
 * with `proxy_cache` and `proxy_cache_lock` on the Durable Stream route,
 * and stopped with its directory removed. Its access log records, per
 * request, whether the cache answered (`$upstream_cache_status`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where nginx is: NGINX_BIN, else on PATH, else Debian's /usr/sbin/nginx. */
export function nginxBinary(): string {
  if (process.env.NGINX_BIN) return process.env.NGINX_BIN;
  for (const dir of (process.env.PATH ?? '').split(':').concat('/usr/sbin')) {
    if (dir && existsSync(join(dir, 'nginx'))) return join(dir, 'nginx');
  }
  return 'nginx';
}

/** Longest a request waits behind another one filling the same cache entry (s); past it, it goes to pollcast itself. */
export const CACHE_LOCK_TIMEOUT_SECONDS = 60;
/** Directories nginx's workers write (the cache and its request and response buffers). */
const CACHE_DIRS = ['cache', 'client_body', 'proxy_temp', 'fastcgi_temp', 'uwsgi_temp', 'scgi_temp'];
/** Longest the start waits for nginx to accept connections (ms). */
const START_TIMEOUT_MS = 10_000;

/** The `server` block's route for pollcast's Durable Streams (docs/durable-streams.md shows the same). */
export function nginxConfig(dir: string, listenPort: number, pollcastPort: number): string {
  return `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  log_format cache '$request_uri $upstream_cache_status $status';
  access_log ${dir}/access.log cache;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=durable:10m max_size=1g inactive=60m use_temp_path=off;
  upstream pollcast {
    server 127.0.0.1:${pollcastPort};
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${listenPort};
    location /v1/stream/ {
      proxy_pass http://pollcast;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache durable;
      # One request per chunk goes to pollcast; the others wait for it and share its answer.
      proxy_cache_lock on;
      proxy_cache_lock_timeout ${CACHE_LOCK_TIMEOUT_SECONDS}s;
      proxy_cache_lock_age ${CACHE_LOCK_TIMEOUT_SECONDS}s;
      proxy_cache_use_stale updating;
      proxy_cache_revalidate on;
      # HEAD names the live tail and is never cached: passed on as HEAD (nginx would make it a GET), and keyed
      # apart from GET, so it is not answered from a catch-up GET of the same URL.
      proxy_cache_convert_head off;
      proxy_cache_key $scheme$proxy_host$request_method$request_uri;
      # Long-polls are held up to 20 s by pollcast; SSE answers say X-Accel-Buffering: no.
      proxy_read_timeout 90s;
      add_header X-Cache-Status $upstream_cache_status always;
    }
  }
}
`;
}

/** A running nginx. */
export interface Nginx {
  url: string;
  /** The access log: one `uri cache-status status` line per request. */
  accessLog(): Promise<string[]>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1', () => {
      c.end();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

/** Starts nginx as a cache in front of pollcast at `pollcastUrl`. */
export async function startNginx(pollcastUrl: string): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'pollcast-nginx-'));
  const port = await freePort();
  await writeFile(join(dir, 'nginx.conf'), nginxConfig(dir, port, Number(new URL(pollcastUrl).port)));
  // Started as root, nginx runs its workers as nobody: they must reach the directory and write the cache and temp files.
  await chmod(dir, 0o755);
  for (const sub of CACHE_DIRS) {
    await mkdir(join(dir, sub));
    await chmod(join(dir, sub), 0o777);
  }
  const child: ChildProcess = spawn(nginxBinary(), ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGQUIT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await accepting(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
      await stop();
      throw new Error(`nginx did not start: ${stderr}${log}`.trim());
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    accessLog: async () => (await readFile(join(dir, 'access.log'), 'utf8').catch(() => '')).split('\n').filter(Boolean),
    stop,
  };
}
