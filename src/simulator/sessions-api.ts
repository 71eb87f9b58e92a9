import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SimContext } from './context.ts';
import type { ApiEndpoint } from './faults.ts';
import { canSee } from './keys.ts';
import type { Caller } from './keys.ts';
import { asksToWait, parseChangesQuery } from './query.ts';
import type { ChangesQuery } from './query.ts';
import { bodyFaultOf, isImmediateFault, patched, sendError, sendFaultyBody, sendJson, sendNoContent, serveImmediateFault } from './respond.ts';
import { handleRestApi, isRestPath } from './rest-api.ts';
import { visibleSession } from './rest-sessions.ts';
import type { SessionRecord } from './state.ts';
import type { Fault } from './types.ts';

const SESSION_ROUTE = /^\/sessions\/([^/]+)\/(changes|status)$/;

/**
 * Serves the sessions API below the dialect's base path; `apiPath` is the decoded path below it
 * (undefined: outside it, 404). Both dialects: `GET /sessions/{id}/changes` and
 * `/status`; the simple dialect's `GET /sessions` (a simulator extra); the real
 * dialect's REST surface (rest-api.ts). Keys scope what a caller sees (keys.ts).
 */
export function handleSessionsApi(ctx: SimContext, req: IncomingMessage, res: ServerResponse, url: URL, apiPath: string | undefined): void {
  ctx.stats.countRequest();
  const route = apiPath === undefined ? null : SESSION_ROUTE.exec(apiPath);
  const rest = apiPath !== undefined && !route && ctx.dialect.name === 'real' && isRestPath(apiPath);
  if (apiPath !== '/sessions' && !route && !rest) return sendError(res, 404, `no route: ${url.pathname}`);
  if (!rest && req.method !== 'GET') return sendError(res, 405, 'method not allowed', { allow: 'GET' });

  let id = '';
  let endpoint: ApiEndpoint | undefined;
  if (route) {
    id = route[1] ?? '';
    endpoint = route[2] === 'changes' ? 'changes' : 'status';
    if (endpoint === 'changes') res.once('close', ctx.stats.beginChanges(id, asksToWait(url.searchParams)));
    else ctx.stats.countStatus(id);
  }

  const auth = ctx.keys.authenticate(req);
  if (!auth.ok) {
    const challenge: Record<string, string> = ctx.authHeader === 'authorization' ? { 'www-authenticate': 'Bearer' } : {};
    return sendError(res, 401, auth.reason === 'revoked' ? 'API key revoked' : 'missing or invalid API key', challenge);
  }
  const caller = auth.caller;
  if (rest) return handleRestApi(ctx, req, res, url, apiPath, caller);
  if (endpoint === undefined) {
    const rows = ctx.store.all().filter((r) => canSee(caller, r.organisation));
    return sendJson(res, 200, { sessions: rows.map((r) => ctx.store.summary(r)) });
  }

  const fault = ctx.faults.take(id, endpoint);
  if (fault) ctx.stats.countFault(id);
  if (fault && isImmediateFault(fault)) return serveImmediateFault(fault, req, res, ctx.held);

  if (endpoint === 'status') return answerStatus(ctx, res, id, caller, fault);
  const parsed = parseChangesQuery(url.searchParams);
  if (!parsed.ok) return sendError(res, 400, parsed.error);
  answerChanges(ctx, res, id, caller, parsed.query, fault);
}

function answerStatus(ctx: SimContext, res: ServerResponse, id: string, caller: Caller, fault: Fault | undefined): void {
  const record = visibleSession(ctx, caller, id);
  if (!record) return sendError(res, 404, `no such session: ${id}`);
  const bodyFault = bodyFaultOf(fault);
  const body = ctx.store.statusBody(record);
  if (bodyFault) sendFaultyBody(bodyFault, res, body, ctx.held);
  else sendJson(res, 200, patched(body, fault));
}

function answerChanges(ctx: SimContext, res: ServerResponse, id: string, caller: Caller, query: ChangesQuery, fault: Fault | undefined): void {
  const record = visibleSession(ctx, caller, id);
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
