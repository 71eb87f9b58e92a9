/** The real API's session collection and item routes: create, list, get, cancel. */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { objectIssues, readApiBody, sendDetail, sendValidation } from './api-body.ts';
import type { ValidationIssue } from './api-body.ts';
import type { SimContext } from './context.ts';
import { canSee } from './keys.ts';
import type { Caller } from './keys.ts';
import type { SessionRecord } from './record.ts';
import { bodyFaultOf, isImmediateFault, patched, sendFaultyBody, sendJson, sendNoContent, serveImmediateFault } from './respond.ts';
import { QueryReader } from './rest-query.ts';
import { agentName, OWNER_VALUES, pageOf, searchableText, sessionView, summaryView, TRAJECTORY_STATUSES } from './rest-views.ts';

/** `Idempotency-Key` length bounds of openapi.json. */
const IDEMPOTENCY_KEY_MAX_CHARS = 255;
/** The list's `size` cap (openapi.json: maximum 100) and default. */
export const LIST_MAX_SIZE = 100;
const LIST_DEFAULT_SIZE = 10;

/** The session if it exists and `caller` may see it (another organisation's session is as absent: 404). */
export function visibleSession(ctx: SimContext, caller: Caller, id: string): SessionRecord | undefined {
  const record = ctx.store.get(id);
  return record && canSee(caller, record.organisation) ? record : undefined;
}

/** Writes the API's 404 for a session the caller cannot see. */
export function sendNoSession(res: ServerResponse): void {
  sendDetail(res, 404, 'Session not found');
}

function requestIssues(body: Record<string, unknown>): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  const agent = body.agent;
  if (agent === undefined) issues.push({ loc: ['body', 'agent'], msg: 'Field required', type: 'missing' });
  else if (typeof agent !== 'string' && (typeof agent !== 'object' || agent === null || Array.isArray(agent))) {
    issues.push({ loc: ['body', 'agent'], msg: 'Input should be a valid string or Agent', type: 'model_type' });
  }
  const messages = body.messages;
  const isMessage = (m: unknown): boolean => typeof m === 'string' || (typeof m === 'object' && m !== null && typeof (m as { message?: unknown }).message === 'string');
  if (messages !== undefined && messages !== null && !isMessage(messages) && !(Array.isArray(messages) && messages.every((m) => typeof m === 'object' && isMessage(m)))) {
    issues.push({ loc: ['body', 'messages'], msg: 'Input should be a string, a UserMessageEvent or a list of them', type: 'union_tag_invalid' });
  }
  for (const key of ['max_steps', 'idle_timeout_s', 'delete_after_min']) {
    const value = body[key];
    if (value !== undefined && value !== null && (typeof value !== 'number' || !Number.isInteger(value) || value < 1)) {
      issues.push({ loc: ['body', key], msg: 'Input should be an integer >= 1', type: 'greater_than_equal' });
    }
  }
  return issues;
}

/** `POST /sessions`: 201 with the new `Session`, which runs (events, then completion); the same Idempotency-Key answers the same session. */
export async function createSession(ctx: SimContext, req: IncomingMessage, res: ServerResponse, caller: Caller): Promise<void> {
  const rawKey = req.headers['idempotency-key'];
  const idemKey = Array.isArray(rawKey) ? rawKey[0] : rawKey;
  const body = await readApiBody(req);
  if (!body) return sendDetail(res, 413, 'Request body too large');
  const issues = objectIssues(body) ?? requestIssues(body.json as Record<string, unknown>);
  if (idemKey !== undefined && (idemKey.length < 1 || idemKey.length > IDEMPOTENCY_KEY_MAX_CHARS)) {
    issues.push({ loc: ['header', 'Idempotency-Key'], msg: `String should have 1 to ${IDEMPOTENCY_KEY_MAX_CHARS} characters`, type: 'string_too_long' });
  }
  if (issues.length > 0) return sendValidation(res, issues);

  const scopeKey = idemKey === undefined ? undefined : `${caller.organisation ?? ''}\0${idemKey}`;
  const earlier = scopeKey === undefined ? undefined : ctx.store.get(ctx.idempotency.get(scopeKey) ?? '');
  if (earlier) return sendJson(res, 201, sessionView(earlier));

  const id = randomUUID();
  const request = structuredClone(body.json as Record<string, unknown>);
  const record = ctx.store.create(id, { request, ...(caller.organisation !== undefined ? { organisation: caller.organisation } : {}) });
  if (scopeKey !== undefined) ctx.idempotency.set(scopeKey, id);
  ctx.runs.start(id);
  sendJson(res, 201, sessionView(record));
}

/** `GET /sessions`: the caller's sessions as a page of summaries, with the list's filters (faults scripted for `list` first). */
export function listSessions(ctx: SimContext, req: IncomingMessage, res: ServerResponse, url: URL, caller: Caller): void {
  const fault = ctx.faults.take('', 'list');
  if (fault && isImmediateFault(fault)) return serveImmediateFault(fault, req, res, ctx.held);
  const q = new QueryReader(url.searchParams);
  const statuses = q.list('status', TRAJECTORY_STATUSES);
  const agents = q.list('agent');
  q.one('owner', OWNER_VALUES);
  const groupId = q.one('group_id');
  const parentId = q.one('parent_session_id');
  const scheduleId = q.one('schedule_id');
  const search = q.one('search')?.toLowerCase();
  const createdBefore = q.time('created_before');
  const createdAfter = q.time('created_after');
  const finishedBefore = q.time('finished_before');
  const finishedAfter = q.time('finished_after');
  const sort = q.list('sort', ['created_at', '-created_at']).at(0) ?? '-created_at';
  const page = q.int('page', 1, 1, Number.MAX_SAFE_INTEGER);
  const size = q.int('size', LIST_DEFAULT_SIZE, 1, LIST_MAX_SIZE);
  if (q.issues.length > 0) return sendValidation(res, q.issues);

  const created = (r: SessionRecord): number => Date.parse(r.createdAt);
  const finished = (r: SessionRecord): number | undefined => (r.finishedAt === null ? undefined : Date.parse(r.finishedAt));
  const rows = ctx.store.all().filter((r) => {
    if (!canSee(caller, r.organisation)) return false;
    if (statuses.length > 0 && !statuses.includes(r.status)) return false;
    if (agents.length > 0 && !agents.includes(agentName(r.request) ?? '')) return false;
    if (groupId !== undefined && r.request.group_id !== groupId) return false;
    if (parentId !== undefined && r.request.parent_session_id !== parentId) return false;
    // The simulator runs no schedules: a schedule filter matches nothing.
    if (scheduleId !== undefined) return false;
    if (search !== undefined && !searchableText(r).includes(search)) return false;
    if (createdBefore !== undefined && !(created(r) < createdBefore)) return false;
    if (createdAfter !== undefined && !(created(r) > createdAfter)) return false;
    const f = finished(r);
    if (finishedBefore !== undefined && !(f !== undefined && f < finishedBefore)) return false;
    if (finishedAfter !== undefined && !(f !== undefined && f > finishedAfter)) return false;
    return true;
  });
  // Creation order is the store's order; the default is newest first.
  if (sort === '-created_at') rows.reverse();
  const cut = pageOf(rows, page, size);
  const body = { ...cut, items: cut.items.map(summaryView) };
  const bodyFault = bodyFaultOf(fault);
  if (bodyFault) sendFaultyBody(bodyFault, res, body, ctx.held);
  else sendJson(res, 200, patched(body, fault));
}

/** Concurrent sessions an organisation may run, as `GET /sessions/quota` reports it (nothing enforces it). */
export const QUOTA_LIMIT = 50;

/** `GET /sessions/quota`: `QuotaStatus` `{scope, limit, active, available}` over the caller's live sessions. */
export function quota(ctx: SimContext, res: ServerResponse, caller: Caller): void {
  const active = ctx.store.all().filter((r) => r.finishedAt === null && canSee(caller, r.organisation)).length;
  sendJson(res, 200, { scope: 'org', limit: QUOTA_LIMIT, active, available: Math.max(0, QUOTA_LIMIT - active) });
}

/** `GET /sessions/{id}`: the `Session` envelope. */
export function getSession(ctx: SimContext, res: ServerResponse, id: string, caller: Caller): void {
  const record = visibleSession(ctx, caller, id);
  if (!record) return sendNoSession(res);
  sendJson(res, 200, sessionView(record));
}

/** `DELETE /sessions/{id}`: cancels a live session (status `interrupted`, closing events); 204, also when it was already over. */
export function cancelSession(ctx: SimContext, res: ServerResponse, id: string, caller: Caller): void {
  const record = visibleSession(ctx, caller, id);
  if (!record) return sendNoSession(res);
  if (record.finishedAt === null) ctx.store.finish(id, { status: 'interrupted', error: 'Session cancelled', closingEvents: true });
  sendNoContent(res);
}
