/**
 * `GET {UPSTREAM_URL}/sessions`: the upstream's session list, a page
 * `{items, total, page, size, pages}` at a time (at most 100 a page), read
 * through the sessions client's pool with the operator's key or a caller's
 * own credential, and followed page by page up to a bound.
 */
import type { FailureOutcome, UpstreamClient } from './client.ts';
import { failureOf, parseJsonText, queryComplaint } from './client.ts';
import type { UpstreamCredential } from './credential.ts';

/** One session of the list as the upstream sends it (`SessionSummary`: id, status, created_at, …); unknown fields are kept. */
export interface SessionSummary {
  id: string;
  status: string;
  [field: string]: unknown;
}

/** The sessions one list read found (every page up to the bound). */
export interface SessionListing {
  items: SessionSummary[];
  /** The upstream's count of sessions matching the filter (may exceed `items` past the bound). */
  total: number;
  /** Pages read for it (each one upstream call). */
  calls: number;
}

/** Outcome of reading the list. */
export type ListOutcome = { kind: 'listing'; listing: SessionListing } | FailureOutcome;

/** Largest page the API serves (its `size` maximum). */
export const LIST_PAGE_SIZE_MAX = 100;

/** Parses one page; a reason when it is not a page of summaries. */
export function parseListPage(value: unknown): { ok: true; items: SessionSummary[]; total: number; pages: number } | { ok: false; reason: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'list page is not an object' };
  const page = value as Record<string, unknown>;
  if (!Array.isArray(page.items)) return { ok: false, reason: 'list page has no items array' };
  const items: SessionSummary[] = [];
  for (const item of page.items) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return { ok: false, reason: 'list item is not an object' };
    const row = item as Record<string, unknown>;
    if (typeof row.id !== 'string' || row.id === '') return { ok: false, reason: 'list item has no id' };
    if (typeof row.status !== 'string') return { ok: false, reason: 'list item has no status' };
    items.push(row as SessionSummary);
  }
  const total = typeof page.total === 'number' && Number.isInteger(page.total) && page.total >= 0 ? page.total : items.length;
  const pages = typeof page.pages === 'number' && Number.isInteger(page.pages) && page.pages >= 0 ? page.pages : 1;
  return { ok: true, items, total, pages };
}

/** Reads of a multi-page list read again from its first page when its count moved between pages (at most this many: a busy list costs twice its pages, no more). */
export const LIST_SHIFT_REREADS = 1;

/**
 * Reads the list for `filter`, page after page, until the upstream has no
 * more or `maxSessions` were read. The same id on two pages (a session
 * created between two reads shifts the pages) is kept once; a count that
 * moved between pages (a session deleted meanwhile may have pulled an unread
 * one onto a page already read) has the list read again, once. A filter that
 * names `page` or `size` asks for that one page: it is read as given, in one
 * call.
 */
export async function readSessionList(
  client: UpstreamClient,
  filter: URLSearchParams,
  maxSessions: number,
  credential: UpstreamCredential | undefined,
  signal?: AbortSignal,
): Promise<ListOutcome> {
  const size = Math.min(LIST_PAGE_SIZE_MAX, Math.max(1, maxSessions));
  const onePage = filter.has('page') || filter.has('size');
  let calls = 0;
  for (let attempt = 0; ; attempt++) {
    const seen = new Map<string, SessionSummary>();
    let total = 0;
    let shifted = false;
    for (let page = 1; ; page++) {
      const params = new URLSearchParams(filter);
      if (!onePage) {
        params.set('page', String(page));
        params.set('size', String(size));
      }
      const started = performance.now();
      const res = await client.get('list', `/sessions?${params.toString()}`, credential, signal);
      calls++;
      const outcome = classify(res, filter);
      client.observe('list', outcome.kind === 'page' ? 'listing' : outcome.kind, (performance.now() - started) / 1000);
      if (outcome.kind !== 'page') return outcome;
      for (const item of outcome.items) if (!seen.has(item.id) && seen.size < maxSessions) seen.set(item.id, item);
      // A count that moved between pages: the list changed under the read. A session that left a page already read
      // shifts the pages after it back (one of page 2 now on page 1, unread): that read would drop a session that
      // exists. A count that grew may hide such a loss (a session added further on, in whatever order the list is).
      if (page > 1 && outcome.total !== total) shifted = true;
      total = outcome.total;
      if (onePage || outcome.items.length === 0 || page >= outcome.pages || seen.size >= maxSessions) break;
    }
    if (!shifted || attempt >= LIST_SHIFT_REREADS) return { kind: 'listing', listing: { items: [...seen.values()], total: Math.max(total, seen.size), calls } };
  }
}

function classify(res: Awaited<ReturnType<UpstreamClient['get']>>, filter: URLSearchParams): { kind: 'page'; items: SessionSummary[]; total: number; pages: number } | FailureOutcome {
  if ('kind' in res) return res;
  if (res.status === 400 || res.status === 422) {
    // A complaint about the filters the viewer gave (passed on as given) is the viewer's to fix; any other (the key,
    // a header, pollcast's own paging) is the upstream failing pollcast's request, shown by its status alone.
    const complaint = queryComplaint(res.text, new Set(filter.keys()));
    if (complaint !== '') return { kind: 'transient', status: res.status, filterRefused: true, reason: `list: the sessions API refused the list's filters (${res.status}): ${complaint}` };
  }
  if (res.status !== 200) return failureOf(res.status, res.headers);
  const json = parseJsonText(res.text);
  if (!json.ok) return { kind: 'bad-body', reason: 'list: body is not valid JSON' };
  const page = parseListPage(json.value);
  if (!page.ok) return { kind: 'bad-body', reason: `list: ${page.reason}` };
  return { kind: 'page', items: page.items, total: page.total, pages: page.pages };
}
