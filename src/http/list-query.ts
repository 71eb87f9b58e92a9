/**
 * The query of `GET /sessions/events`: the upstream list's own filters
 * (openapi.json of the Agent API, `GET /sessions`), each checked here before
 * anything reaches the upstream, and put in one canonical order so the same
 * filter written two ways shares one poll.
 */
import { BadRequestError } from '../errors.ts';
import { redactUrl } from '../log.ts';
import type { ListFilter } from '../hub/list-feed.ts';
import { LIST_PAGE_SIZE_MAX } from '../upstream/list-client.ts';
import { GOING_ON_STATUSES, TERMINAL_STATUSES } from '../upstream/types.ts';

/** The API's session statuses (TrajectoryStatus). */
export const LIST_STATUSES: ReadonlySet<string> = new Set([...GOING_ON_STATUSES, ...TERMINAL_STATUSES]);
const OWNERS: ReadonlySet<string> = new Set(['me', 'me-in-organization', 'organization', 'me-or-organization']);
const SORTS: ReadonlySet<string> = new Set(['created_at', '-created_at']);
/** Longest free-text filter value accepted (characters): a search term, an agent name. */
export const MAX_FILTER_TEXT_CHARS = 200;
/** Most values of one repeatable filter (`status`, `agent`). */
export const MAX_FILTER_VALUES = 20;
/** Query parameters pollcast reads itself and never forwards. */
const OWN_PARAMS: ReadonlySet<string> = new Set(['access_token', 'last_event_id']);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** An ISO 8601 date-time as the API's `format: date-time` takes it, or a date alone (its FastAPI takes one for midnight). */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;
/** Largest `page` accepted (the API takes any positive integer; past this no list is that long). */
export const MAX_LIST_PAGE = 100_000;
/**
 * Ids and names: printable, no control characters (C0, DEL, C1), no bidirectional overrides (text that shows other than it
 * reads), and no U+FFFD, which is what a malformed percent-encoding (`%ff`) decodes to: the caller's filter would
 * reach the upstream as another one.
 */
const PLAIN_TEXT = /^[^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\ufffd]+$/;

type Check = (name: string, value: string) => void;

const oneOf = (allowed: ReadonlySet<string>): Check => (name, value) => {
  if (!allowed.has(value)) throw new BadRequestError(`${name} must be one of ${[...allowed].join(', ')}`);
};
const text: Check = (name, value) => {
  if (value.length > MAX_FILTER_TEXT_CHARS || !PLAIN_TEXT.test(value)) throw new BadRequestError(`${name} must be 1-${MAX_FILTER_TEXT_CHARS} printable characters`);
};
/** True when the date-time names a real instant: Date.parse rolls 2026-02-30 over to March and takes hour 24, the API refuses both (422). */
function onTheCalendar(value: string): boolean {
  const [year, month, day, hour] = [value.slice(0, 4), value.slice(5, 7), value.slice(8, 10), value.slice(11, 13)].map(Number) as [number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour <= 23;
}
const dateTime: Check = (name, value) => {
  if (!DATE_TIME.test(value) || Number.isNaN(Date.parse(value)) || !onTheCalendar(value)) throw new BadRequestError(`${name} must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z, or a date such as 2026-01-31`);
};
const integer = (min: number, max: number): Check => (name, value) => {
  if (!/^\d{1,9}$/.test(value) || Number(value) < min || Number(value) > max) throw new BadRequestError(`${name} must be an integer ${min}-${max}`);
};
const uuid: Check = (name, value) => {
  if (!UUID.test(value)) throw new BadRequestError(`${name} must be a UUID`);
};

/** Every filter the list takes: whether it may repeat, and its check. */
const FILTERS: Readonly<Record<string, { repeat: boolean; check: Check }>> = {
  status: { repeat: true, check: oneOf(LIST_STATUSES) },
  agent: { repeat: true, check: text },
  owner: { repeat: false, check: oneOf(OWNERS) },
  search: { repeat: false, check: text },
  group_id: { repeat: false, check: text },
  parent_session_id: { repeat: false, check: text },
  schedule_id: { repeat: false, check: uuid },
  created_before: { repeat: false, check: dateTime },
  created_after: { repeat: false, check: dateTime },
  finished_before: { repeat: false, check: dateTime },
  finished_after: { repeat: false, check: dateTime },
  sort: { repeat: false, check: oneOf(SORTS) },
  // Either one given: the stream watches that one page, as the upstream cuts it at each poll (docs/session-list.md).
  page: { repeat: false, check: integer(1, MAX_LIST_PAGE) },
  size: { repeat: false, check: integer(1, LIST_PAGE_SIZE_MAX) },
};

/**
 * The same filter over the whole list (no `page`, no `size`): what a viewer limited to some sessions (a token's
 * claim) is served from, as a page cut from the operator's list would hold few of its sessions, or none.
 */
export function wholeList(filter: ListFilter): ListFilter {
  if (!filter.params.has('page') && !filter.params.has('size')) return filter;
  const params = new URLSearchParams(filter.params);
  params.delete('page');
  params.delete('size');
  return listFilterOf(params, filter.statuses);
}

/** The filter of `params` (in canonical order), with its key and the key as logs show it. */
function listFilterOf(params: URLSearchParams, statuses: ReadonlySet<string> | undefined): ListFilter {
  const key = params.toString();
  return { params, key, logKey: redactUrl(key), statuses };
}

/** Checks the query (400 for anything unknown or malformed) and returns the canonical filter. */
export function parseListFilter(query: URLSearchParams): ListFilter {
  const values = new Map<string, Set<string>>();
  for (const [name, value] of query) {
    if (OWN_PARAMS.has(name)) continue;
    const spec = FILTERS[name];
    if (spec === undefined) throw new BadRequestError(`unknown filter ${JSON.stringify(name.slice(0, 64))}; the list takes ${Object.keys(FILTERS).join(', ')}`);
    if (value === '') throw new BadRequestError(`${name} must not be empty`);
    spec.check(name, value);
    const set = values.get(name) ?? new Set<string>();
    // `page=01` and `page=1` are one list, one poll.
    set.add(name === 'page' || name === 'size' ? String(Number(value)) : value);
    if (set.size > 1 && !spec.repeat) throw new BadRequestError(`${name} may be given once`);
    if (set.size > MAX_FILTER_VALUES) throw new BadRequestError(`${name} may be given at most ${MAX_FILTER_VALUES} times`);
    values.set(name, set);
  }
  const params = new URLSearchParams();
  for (const name of [...values.keys()].sort()) for (const v of [...values.get(name)!].sort()) params.append(name, v);
  const statuses = values.get('status');
  return listFilterOf(params, statuses);
}
