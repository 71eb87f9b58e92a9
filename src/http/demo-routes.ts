/** The dashboard page and its script, and the browser client module (the page's session list is `GET /sessions/events`). */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Hono } from 'hono';
import type { AppEnv } from './env.ts';

/** The folder of static files, the same from src/ and from dist/. */
export const PUBLIC_DIR = new URL('../../public/', import.meta.url);

/** Static files served from memory: path → [file, content type]. */
const STATIC_FILES: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/dashboard.js': ['dashboard.js', 'text/javascript; charset=utf-8'],
  '/pollcast-client.js': ['pollcast-client.js', 'text/javascript; charset=utf-8'],
  '/pollcast-client.d.ts': ['pollcast-client.d.ts', 'text/plain; charset=utf-8'],
};

function load(file: string): Buffer | undefined {
  try {
    return readFileSync(new URL(file, PUBLIC_DIR));
  } catch {
    return undefined;
  }
}

/**
 * The page's Content-Security-Policy: its own script and streams, its one inline `<style>` (by hash), images from
 * data: URLs only (screenshots come as base64): whatever an event holds, the page fetches nothing from elsewhere.
 */
export function pagePolicy(html: string): string {
  const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
  return [`default-src 'none'`, `script-src 'self'`, `style-src ${styles.join(' ') || "'none'"}`, `img-src data:`, `connect-src 'self'`, `base-uri 'none'`, `form-action 'self'`, `frame-ancestors 'none'`].join('; ');
}

/** Registers `/`, its script and the client module; `simulated`: the page says its sessions come from the simulator. */
export function registerDemoRoutes(app: Hono<AppEnv>, simulated: boolean): void {
  for (const [path, [file, type]] of Object.entries(STATIC_FILES)) {
    let bytes = load(file);
    if (bytes && simulated && file === 'index.html') bytes = Buffer.from(bytes.toString('utf8').replace(/( id="demo"[^>]*) hidden>/, '$1>'));
    if (!bytes) continue;
    // No Referer from the page: its address may carry ?token=, which a proxy logging Referer would keep.
    const headers: Record<string, string> = { 'content-type': type, 'cache-control': 'no-cache', 'referrer-policy': 'no-referrer', 'x-content-type-options': 'nosniff' };
    if (file === 'index.html') headers['content-security-policy'] = pagePolicy(bytes.toString('utf8'));
    app.get(path, (c) => c.body(new Uint8Array(bytes), 200, headers));
  }
}
