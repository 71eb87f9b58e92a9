/** The real API's JSON shapes of a session (`Session`, `SessionSummary`) and its pages, from openapi.json of hcompai/hai-agents-ts. */
import type { SessionRecord } from './record.ts';

/** Every `TrajectoryStatus` the API knows (the filter `status` accepts only these). */
export const TRAJECTORY_STATUSES = ['queued', 'pending', 'running', 'paused', 'idle', 'awaiting_tool_results', 'completed', 'failed', 'timed_out', 'interrupted'] as const;

/** The values of the list's `owner` filter. */
export const OWNER_VALUES = ['me', 'me-in-organization', 'organization', 'me-or-organization'] as const;

/** A page as fastapi-pagination answers it. */
export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  size: number;
  pages: number;
}

/** The slice of `all` for 1-based `page` of `size`. */
export function pageOf<T>(all: T[], page: number, size: number): Page<T> {
  return { items: all.slice((page - 1) * size, page * size), total: all.length, page, size, pages: Math.ceil(all.length / size) };
}

/** The agent's name in a SessionRequest: a registered name, or an inline Agent's `name`. */
export function agentName(request: Record<string, unknown>): string | null {
  const agent = request.agent;
  if (typeof agent === 'string') return agent;
  if (typeof agent === 'object' && agent !== null && typeof (agent as { name?: unknown }).name === 'string') return (agent as { name: string }).name;
  return null;
}

/** The first `UserMessageEvent` of a SessionRequest's `messages` (a string, one message or a list), or null. */
export function firstMessage(request: Record<string, unknown>): Record<string, unknown> | null {
  let first: unknown = request.messages;
  if (Array.isArray(first)) first = first[0];
  if (typeof first === 'string') return { type: 'user_message', message: first, images: [], caller_id: 'user' };
  if (typeof first === 'object' && first !== null && typeof (first as { message?: unknown }).message === 'string') {
    return { type: 'user_message', images: [], caller_id: 'user', ...(first as Record<string, unknown>) };
  }
  return null;
}

function agentViewUrl(record: SessionRecord): string {
  return `https://platform.example.invalid/sessions/${encodeURIComponent(record.id)}`;
}

/** `GET /sessions/{id}` and `POST /sessions`: the `Session` envelope. */
export function sessionView(record: SessionRecord): Record<string, unknown> {
  return {
    id: record.id,
    request: structuredClone(record.request),
    status: record.status,
    agent_view_url: agentViewUrl(record),
    latest_answer: record.answer ?? null,
    created_at: record.createdAt,
    started_at: record.startedAt,
    finished_at: record.finishedAt,
  };
}

/** One row of `GET /sessions`: the `SessionSummary` (no other field: the schema forbids extras). */
export function summaryView(record: SessionRecord): Record<string, unknown> {
  return {
    id: record.id,
    agent: agentName(record.request),
    status: record.status,
    agent_view_url: agentViewUrl(record),
    first_message: firstMessage(record.request),
    created_at: record.createdAt,
    started_at: record.startedAt,
    finished_at: record.finishedAt,
    last_activity_at: record.events.at(-1)?.timestamp ?? null,
    anonymized_at: null,
  };
}

/** Text a list `search` matches: the first message and the answer, lower-cased. */
export function searchableText(record: SessionRecord): string {
  const answer = typeof record.answer === 'string' ? record.answer : record.answer == null ? '' : JSON.stringify(record.answer);
  return `${String(firstMessage(record.request)?.message ?? '')}\n${answer}`.toLowerCase();
}
