/** `GET /readyz`: readiness (the sessions API answers, the cluster store's state), apart from `/healthz` (liveness). */
import type { Hono } from 'hono';
import type { AppDeps, AppEnv } from './deps.ts';

/** Registers `/readyz`: 200 when ready, 503 when not, JSON naming the upstream's and Redis's state either way. */
export function registerReadyzRoute(app: Hono<AppEnv>, deps: AppDeps): void {
  app.get('/readyz', async (c) => {
    const r = await deps.readiness.check();
    return c.json({ status: r.ready ? 'ready' : deps.isShuttingDown() ? 'shutting down' : 'not ready', upstream: r.upstream, ...(r.redis ? { redis: r.redis } : {}) }, r.ready ? 200 : 503);
  });
}
