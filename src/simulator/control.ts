import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimContext } from './context.ts';
import { httpStatusFor, InvalidInputError } from './errors.ts';
import { sendError, sendJson } from './respond.ts';
import type { Fault, FaultEndpoint, FinishOutcome, SessionSpec, StatusPatch } from './types.ts';

/** Control bodies are tiny; anything bigger is a mistake, not a session spec. */
const MAX_CONTROL_BODY_BYTES = 1024 * 1024;

/** The prefix of the control API; never subject to the API key or to faults. */
export const CONTROL_PREFIX = '/_sim/';

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_CONTROL_BODY_BYTES) throw new InvalidInputError(`body larger than ${MAX_CONTROL_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidInputError(`body is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidInputError('body must be a JSON object');
  return value as Record<string, unknown>;
}

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  if (value !== undefined && typeof value !== 'string') throw new InvalidInputError(`${key} must be a string`);
  return value;
}

function scopeOf(body: Record<string, unknown>): { session?: string; endpoint?: FaultEndpoint } {
  const session = optionalString(body, 'session');
  const endpoint = optionalString(body, 'endpoint') as FaultEndpoint | undefined;
  return { ...(session !== undefined ? { session } : {}), ...(endpoint !== undefined ? { endpoint } : {}) };
}

type Route = (ctx: SimContext, match: string[], body: Record<string, unknown>) => { status: number; body: unknown };

// Method + path pattern → handler; `match` holds the decoded path parameters.
const ROUTES: Array<[string, RegExp, Route]> = [
  ['GET', /^sessions$/, (ctx) => ({ status: 200, body: { sessions: ctx.store.all().map((r) => ctx.store.summary(r)) } })],
  [
    'POST',
    /^sessions$/,
    (ctx, _m, body) => {
      const { id, ...spec } = body;
      if (typeof id !== 'string') throw new InvalidInputError('id must be a string');
      ctx.store.create(id, spec as SessionSpec);
      return { status: 201, body: { id } };
    },
  ],
  ['DELETE', /^sessions\/([^/]+)$/, (ctx, [id = '']) => (ctx.store.delete(id), { status: 200, body: { deleted: id } })],
  ['GET', /^sessions\/([^/]+)$/, (ctx, [id = '']) => ({ status: 200, body: ctx.store.summary(ctx.store.require(id)) })],
  [
    'POST',
    /^sessions\/([^/]+)\/events$/,
    (ctx, [id = ''], body) => {
      const count = body.count ?? 1;
      if (typeof count !== 'number') throw new InvalidInputError('count must be a number');
      return { status: 200, body: { indices: ctx.store.append(id, count) } };
    },
  ],
  ['GET', /^sessions\/([^/]+)\/events$/, (ctx, [id = '']) => ({ status: 200, body: { events: ctx.store.require(id).events } })],
  [
    'POST',
    /^sessions\/([^/]+)\/finish$/,
    (ctx, [id = ''], body) => {
      ctx.store.finish(id, body as FinishOutcome);
      return { status: 200, body: ctx.store.snapshot(ctx.store.require(id)) };
    },
  ],
  [
    'POST',
    /^sessions\/([^/]+)\/status$/,
    (ctx, [id = ''], body) => {
      ctx.store.setStatus(id, body as StatusPatch);
      return { status: 200, body: ctx.store.snapshot(ctx.store.require(id)) };
    },
  ],
  ['GET', /^sessions\/([^/]+)\/received$/, (ctx, [id = '']) => ({ status: 200, body: { received: ctx.store.require(id).received } })],
  [
    'POST',
    /^keys$/,
    (ctx, _m, body) => {
      ctx.keys.add(body.key as string, body.organisation as string);
      return { status: 200, body: { ok: true } };
    },
  ],
  ['POST', /^keys\/revoke$/, (ctx, _m, body) => (ctx.keys.revoke(body.key as string), { status: 200, body: { ok: true } })],
  ['GET', /^requests$/, (ctx) => ({ status: 200, body: { requests: ctx.requestLog.all() } })],
  ['POST', /^requests\/clear$/, (ctx) => (ctx.requestLog.clear(), { status: 200, body: { ok: true } })],
  ['GET', /^stats$/, (ctx) => ({ status: 200, body: { totals: ctx.stats.totals(), sessions: ctx.stats.all() } })],
  ['GET', /^stats\/([^/]+)$/, (ctx, [id = '']) => ({ status: 200, body: ctx.stats.get(id) })],
  ['POST', /^stats\/reset$/, (ctx) => (ctx.stats.reset(), { status: 200, body: { ok: true } })],
  [
    'POST',
    /^faults\/script$/,
    (ctx, _m, body) => {
      ctx.faults.script(body.faults as Fault[], scopeOf(body));
      return { status: 200, body: { pending: ctx.faults.pending() } };
    },
  ],
  [
    'POST',
    /^faults\/random$/,
    (ctx, _m, body) => {
      ctx.faults.random({ ...scopeOf(body), seed: body.seed as number, rate: body.rate as number, kinds: body.kinds as Fault[] });
      return { status: 200, body: { ok: true } };
    },
  ],
  ['POST', /^faults\/clear$/, (ctx) => (ctx.faults.clear(), { status: 200, body: { ok: true } })],
];

/** Serves the `/_sim/` control API (JSON in, JSON out) for benchmarks and chaos runs in other processes; `path` is below `/_sim/`. */
export async function handleControl(ctx: SimContext, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const candidates = ROUTES.filter(([, pattern]) => pattern.test(path));
  const route = candidates.find(([method]) => method === req.method);
  if (!route) {
    if (candidates.length > 0) return sendError(res, 405, 'method not allowed', { allow: candidates.map(([m]) => m).join(', ') });
    return sendError(res, 404, `no control route: ${CONTROL_PREFIX}${path}`);
  }
  try {
    const match = (route[1].exec(path) ?? []).slice(1).map((part) => decodeURIComponent(part));
    const body = req.method === 'POST' ? await readJson(req) : {};
    const result = route[2](ctx, match, body);
    sendJson(res, result.status, result.body);
  } catch (error) {
    const status = error instanceof URIError ? 400 : httpStatusFor(error);
    sendError(res, status, status === 500 ? `internal error: ${(error as Error).message}` : (error as Error).message);
  }
}
