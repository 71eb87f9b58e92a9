/** The real API's per-session actions (messages, tool results, pause, resume, force answer), history page, share and resources. */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { objectIssues, readApiBody, sendDetail, sendValidation } from './api-body.ts';
import type { ReadBody, ValidationIssue } from './api-body.ts';
import type { SimContext } from './context.ts';
import type { Caller } from './keys.ts';
import type { SessionRecord } from './record.ts';
import type { ReceivedBody } from './types.ts';
import { sendJson, sendNoContent } from './respond.ts';
import { QueryReader } from './rest-query.ts';
import { sendNoSession, visibleSession } from './rest-sessions.ts';
import { pageOf } from './rest-views.ts';

/** Bodies remembered per session (`received`), newest kept. */
export const RECEIVED_MAX_PER_SESSION = 50;
/** Characters of a user message copied into its message_event (the whole text is only digested). */
const MESSAGE_PREVIEW_CHARS = 200;
/** The history page's `size` cap (openapi.json: maximum 200) and default. */
const EVENTS_MAX_SIZE = 200;
const EVENTS_DEFAULT_SIZE = 50;
/** Presigned resource URLs say they expire after this many seconds (nothing checks it: the host is `.invalid`). */
const PRESIGN_EXPIRES_SECONDS = 300;

/** The session actions that answer `202` with no body. */
export type SessionAction = 'messages' | 'tool_results' | 'pause' | 'resume' | 'force_answer';

function messageIssues(json: Record<string, unknown>): ValidationIssue[] {
  const isMessage = (m: unknown): boolean => typeof m === 'object' && m !== null && typeof (m as { message?: unknown }).message === 'string';
  if (json.type === 'batch') {
    const list = json.messages;
    if (!Array.isArray(list) || list.length === 0 || !list.every(isMessage)) {
      return [{ loc: ['body', 'batch', 'messages'], msg: 'List should have at least 1 item, each with a message', type: 'too_short' }];
    }
    return [];
  }
  if (json.type !== undefined && json.type !== 'user_message') {
    return [{ loc: ['body'], msg: "Input tag should be 'user_message' or 'batch'", type: 'union_tag_invalid' }];
  }
  return isMessage(json) ? [] : [{ loc: ['body', 'user_message', 'message'], msg: 'Field required', type: 'missing' }];
}

function toolResultIssues(json: Record<string, unknown>): ValidationIssue[] {
  if (json.type === 'batch') return Array.isArray(json.results) && json.results.length > 0 ? [] : [{ loc: ['body', 'results'], msg: 'List should have at least 1 item', type: 'too_short' }];
  if (json.kind === 'error_event') return [];
  return typeof json.tool_req === 'object' && json.tool_req !== null ? [] : [{ loc: ['body', 'tool_req'], msg: 'Field required', type: 'missing' }];
}

function remember(record: SessionRecord, route: ReceivedBody['route'], body: ReadBody): void {
  record.received.push({ route, bytes: body.bytes, sha256: body.sha256, at: new Date().toISOString() });
  if (record.received.length > RECEIVED_MAX_PER_SESSION) record.received.shift();
}

function userMessageDrafts(json: Record<string, unknown>, bytes: number): Array<{ type: string; data: Record<string, unknown> }> {
  const list = json.type === 'batch' ? (json.messages as Array<{ message: string }>) : [json as { message: string }];
  return list.map((m) => ({
    type: 'AgentEvent',
    data: { kind: 'message_event', role: 'user', message: m.message.slice(0, MESSAGE_PREVIEW_CHARS), message_chars: m.message.length, body_bytes: bytes },
  }));
}

/** `POST /sessions/{id}/{action}` → 202. Bodies are validated first (422, as FastAPI does before the handler), then the session (404), then its state (409 once over). */
export async function sessionAction(ctx: SimContext, req: IncomingMessage, res: ServerResponse, id: string, action: SessionAction, caller: Caller): Promise<void> {
  let body: ReadBody | undefined;
  if (action === 'messages' || action === 'tool_results') {
    body = await readApiBody(req);
    if (!body) return sendDetail(res, 413, 'Request body too large');
    const json = body.json as Record<string, unknown>;
    const issues = objectIssues(body) ?? (action === 'messages' ? messageIssues(json) : toolResultIssues(json));
    if (issues.length > 0) return sendValidation(res, issues);
  } else {
    req.resume();
  }
  const record = visibleSession(ctx, caller, id);
  if (!record) return sendNoSession(res);
  if (record.finishedAt !== null) return sendDetail(res, 409, `Session is ${record.status}`);

  switch (action) {
    case 'messages': {
      remember(record, 'messages', body as ReadBody);
      ctx.store.appendDrafts(id, userMessageDrafts((body as ReadBody).json as Record<string, unknown>, (body as ReadBody).bytes));
      if (record.status === 'idle') ctx.store.setStatus(id, { status: 'running' });
      break;
    }
    case 'tool_results':
      remember(record, 'tool_results', body as ReadBody);
      if (record.status === 'awaiting_tool_results') ctx.store.setStatus(id, { status: 'running' });
      break;
    case 'pause':
      if (record.status !== 'paused') ctx.store.setStatus(id, { status: 'paused' });
      break;
    case 'resume':
      if (record.status === 'paused') ctx.store.setStatus(id, { status: 'running' });
      break;
    case 'force_answer':
      // A run answers at its next step; a session no run drives (control API, demo) answers at once.
      if (ctx.runs.has(id)) ctx.runs.forceAnswer(id);
      else ctx.store.finish(id, { status: 'completed', closingEvents: true });
      break;
  }
  res.writeHead(202, { 'content-length': '0', 'cache-control': 'no-store' });
  res.end();
}

/** `GET /sessions/{id}/events`: the history as a page (`page`, `size` ≤ 200, `sort` by timestamp, `type` filter). */
export function eventsPage(ctx: SimContext, res: ServerResponse, url: URL, id: string, caller: Caller): void {
  const q = new QueryReader(url.searchParams);
  const page = q.int('page', 1, 1, Number.MAX_SAFE_INTEGER);
  const size = q.int('size', EVENTS_DEFAULT_SIZE, 1, EVENTS_MAX_SIZE);
  const sort = q.list('sort', ['timestamp', '-timestamp']).at(0) ?? 'timestamp';
  const type = q.one('type');
  if (q.issues.length > 0) return sendValidation(res, q.issues);
  const record = visibleSession(ctx, caller, id);
  if (!record) return sendNoSession(res);
  const events = record.events.filter((e) => type === undefined || e.type === type);
  if (sort === '-timestamp') events.reverse();
  sendJson(res, 200, pageOf(events, page, size));
}

/** `POST /sessions/{id}/share` → 200 `{share_url}` (a path); `DELETE` → 204. */
export function share(ctx: SimContext, res: ServerResponse, id: string, on: boolean, caller: Caller): void {
  const record = visibleSession(ctx, caller, id);
  if (!record) return sendNoSession(res);
  record.shared = on;
  if (on) sendJson(res, 200, { share_url: `/share/sessions/${encodeURIComponent(id)}` });
  else sendNoContent(res);
}

/** `GET /sessions/{id}/resources/{bucket}/{key}` → 302 to a presigned URL (on a reserved `.invalid` host). */
export function resource(ctx: SimContext, res: ServerResponse, id: string, bucket: string, key: string, caller: Caller): void {
  const record = visibleSession(ctx, caller, id);
  if (!record) return sendNoSession(res);
  const signature = createHash('sha256').update(`${id}/${bucket}/${key}`).digest('hex');
  const path = `${encodeURIComponent(bucket)}/${key.split('/').map(encodeURIComponent).join('/')}`;
  const location = `https://resources.example.invalid/${path}?X-Amz-Expires=${PRESIGN_EXPIRES_SECONDS}&X-Amz-Signature=${signature}`;
  res.writeHead(302, { location, 'content-length': '0', 'cache-control': 'no-store' });
  res.end();
}
