/** `405 Method Not Allowed` with `Allow`, for methods a route does not serve (instead of a misleading 404). */
import type { Context } from 'hono';
import type { AppEnv } from './env.ts';

/** A handler answering 405 JSON naming the method and listing the allowed ones. */
export function methodNotAllowed(allowed: readonly string[]) {
  const allow = allowed.join(', ');
  return (c: Context<AppEnv>) => c.json({ error: `method ${c.req.method} not allowed here; use ${allow}`, code: 'method_not_allowed' }, 405, { allow });
}
