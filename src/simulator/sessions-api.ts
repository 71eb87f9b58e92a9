import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimContext } from './context.ts';
import type { ApiEndpoint } from './faults.ts';
import { asksToWait, parseChangesQuery } from './query.ts';
import type { ChangesQuery } from './query.ts';
import { isImmediateFault, sendError, sendFaultyBody, sendJson, sendNoContent, serveImmediateFault } from './respond.ts';
import type { BodyFault } from './respond.ts';
import type { SessionRecord } from './state.ts';
import type { Fault } from './types.ts';

const SESSION_ROUTE = /^\/sessions\/([^/]+)\/(changes|status)$/;

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  // Constant time, so the simulator does not teach clients a timing oracle by example.
  return a.length === b.length && timingSafeEqual(a, b);
}

function authorized(ctx: SimContext, req: IncomingMessage): boolean {
  if (ctx.apiKey === undefined) return true;
  const raw = req.headers[ctx.authHeader];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined) return false;
  if (ctx.authHeader !== 'authorization') return sameSecret(value, ctx.apiKey);
  const match = /^Bearer\s+(.+)$/i.exec(value);
  return match?.[1] !== undefined && sameSecret(match[1].trim(), ctx.apiKey);
}

/**
 * Serves `GET /sessions`, `GET /sessions/{id}/changes` and `GET /sessions/{id}/status`
 * below the dialect's base path; `apiPath` is the path below it (undefined: outside it, 404).
 */
export function handleSessionsApi(ctx: SimContext, req: IncomingMessage, res: ServerResponse, url: URL, apiPath: string | undefined): void {
  ctx.stats.countRequest();
  const route = apiPath === undefined ? null : SESSION_ROUTE.exec(apiPath);
  if (apiPath !== '/sessions' && !route) return sendError(res, 404, `no route: ${url.pathname}`);
  if (req.method !== 'GET') return sendError(res, 405, 'method not allowed', { allow: 'GET' });

  let id = '';
  let endpoint: ApiEndpoint | undefined;
  if (route) {
    try {
      id = decodeURIComponent(route[1] ?? '');
    } catch {
      return sendError(res, 400, 'malformed session id');
    }
    endpoint = route[2] === 'changes' ? 'changes' : 'status';
    if (endpoint === 'changes') res.once('close', ctx.stats.beginChanges(id, asksToWait(url.searchParams)));
    else ctx.stats.countStatus(id);
  }

  if (!authorized(ctx, req)) {
    const challenge: Record<string, string> = ctx.authHeader === 'authorization' ? { 'www-authenticate': 'Bearer' } : {};
    return sendError(res, 401, 'missing or invalid API key', challenge);
  }
  if (endpoint === undefined) {
    return sendJson(res, 200, { sessions: ctx.store.all().map((r) => ctx.store.summary(r)) });
  }

  const fault = ctx.faults.take(id, endpoint);
  if (fault) ctx.stats.countFault(id);
  if (fault && isImmediateFault(fault)) return serveImmediateFault(fault, req, res, ctx.held);

  if (endpoint === 'status') return answerStatus(ctx, res, id, fault);
  const parsed = parseChangesQuery(url.searchParams);
  if (!parsed.ok) return sendError(res, 400, parsed.error);
  answerChanges(ctx, res, id, parsed.query, fault);
}

function bodyFaultOf(fault: Fault | undefined): BodyFault | undefined {
  return fault && (fault.kind === 'slow-body' || fault.kind === 'invalid-json' || fault.kind === 'truncated') ? fault : undefined;
}

/** The 200 body as the fault leaves it: a `patch` fault overrides top-level fields. */
function patched(body: object, fault: Fault | undefined): object {
  return fault?.kind === 'patch' ? { ...body, ...structuredClone(fault.body) } : body;
}

function answerStatus(ctx: SimContext, res: ServerResponse, id: string, fault: Fault | undefined): void {
  const record = ctx.store.get(id);
  if (!record) return sendError(res, 404, `no such session: ${id}`);
  const bodyFault = bodyFaultOf(fault);
  const body = ctx.store.statusBody(record);
  if (bodyFault) sendFaultyBody(bodyFault, res, body, ctx.held);
  else sendJson(res, 200, patched(body, fault));
}

function answerChanges(ctx: SimContext, res: ServerResponse, id: string, query: ChangesQuery, fault: Fault | undefined): void {
  const record = ctx.store.get(id);
  if (!record) return sendError(res, 404, `no such session: ${id}`);
  const shortMax = fault?.kind === 'short-limit' ? fault.max : Number.POSITIVE_INFINITY;
  const limit = Math.min(query.limit, ctx.maxLimit, shortMax);
  const bodyFault = bodyFaultOf(fault);
  const answer = (): void => {
    const body = ctx.store.changes(record, query.fromIndex, limit, query.includeEvents);
    if (bodyFault) sendFaultyBody(bodyFault, res, body, ctx.held);
    else sendJson(res, 200, patched(body, fault));
  };

  // Spoiled bodies answer at once with the current snapshot, so the fault is always observable.
  if (bodyFault || record.events.length > query.fromIndex) return answer();
  // A finished session never gets new events by itself: no point holding the request.
  if (record.finishedAt !== null) return ctx.dialect.emptyAnswerAfterEnd === 200 ? answer() : sendNoContent(res);
  const waitMs = Math.min(query.waitSeconds, ctx.maxWaitSeconds) * 1000;
  if (waitMs <= 0) return sendNoContent(res);
  holdChanges(ctx, res, record, query.fromIndex, waitMs, answer);
}

function holdChanges(ctx: SimContext, res: ServerResponse, record: SessionRecord, fromIndex: number, waitMs: number, answer: () => void): void {
  let timer: NodeJS.Timeout | undefined;
  const release = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    removeWaiter();
  };
  const removeWaiter = ctx.store.addWaiter(record, {
    fromIndex,
    onChange(reason) {
      if (!ctx.dialect.releasesHeldPoll(reason)) return;
      release();
      if (reason === 'deleted') sendError(res, 404, `no such session: ${record.id}`);
      else if (reason === 'closed') res.destroy();
      else answer();
    },
  });
  timer = setTimeout(() => {
    release();
    sendNoContent(res);
  }, waitMs);
  // A client that gives up must not leave a waiter behind.
  res.once('close', release);
  ctx.held.hold(res, () => {
    release();
    res.destroy();
  });
}
