/** The demo page and its script, the browser client module, and (with the built-in simulator) its session list. */
import { readFileSync } from 'node:fs';
import type { Hono } from 'hono';
import type { AppEnv } from './env.ts';

/** Lists sessions for the demo page (the built-in simulator provides it). */
export interface DemoSource {
  listSessions(): Array<{ id: string; status: string; started_at: string | null; finished_at: string | null; events: number }>;
}

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

/** Registers `/`, its script, the client module and `/demo/sessions`. */
export function registerDemoRoutes(app: Hono<AppEnv>, demo: DemoSource | undefined): void {
  for (const [path, [file, type]] of Object.entries(STATIC_FILES)) {
    const bytes = load(file);
    if (!bytes) continue;
    app.get(path, (c) => c.body(new Uint8Array(bytes), 200, { 'content-type': type, 'cache-control': 'no-cache' }));
  }
  app.get('/demo/sessions', (c) => {
    if (!demo) return c.json({ error: 'no demo: pollcast is bridging a real sessions API (UPSTREAM_URL is set)', code: 'not_found' }, 404);
    return c.json({ sessions: demo.listSessions() });
  });
}
