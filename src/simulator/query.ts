/** The validated query of a changes request (before the server's caps). */
export interface ChangesQuery {
  fromIndex: number;
  limit: number;
  /** include_events (or its older name include_details); default true. */
  includeEvents: boolean;
  waitSeconds: number;
}

/** Events per changes answer when the client names no limit. */
export const DEFAULT_LIMIT = 100;

const INTEGER = /^\d+$/;
const DECIMAL = /^\d+(\.\d+)?$/;

/** The real API's name for the details flag, and the older name that both dialects still accept. */
const EVENTS_FLAG = 'include_events';
const EVENTS_FLAG_ALIAS = 'include_details';

// The spellings the real API's query parsing (pydantic) takes for a boolean, in any case.
const TRUE_WORDS: ReadonlySet<string> = new Set(['true', '1', 'on', 't', 'y', 'yes']);
const FALSE_WORDS: ReadonlySet<string> = new Set(['false', '0', 'off', 'f', 'n', 'no']);

/** Reads include_events / include_details: absent → true; both given must agree (a client bug otherwise). */
function parseEventsFlag(params: URLSearchParams): { ok: true; value: boolean } | { ok: false; error: string } {
  const given: Array<[string, boolean]> = [];
  for (const name of [EVENTS_FLAG, EVENTS_FLAG_ALIAS]) {
    const raw = params.get(name);
    if (raw === null) continue;
    const word = raw.toLowerCase();
    if (!TRUE_WORDS.has(word) && !FALSE_WORDS.has(word)) return { ok: false, error: `${name} must be a boolean (true/false, 1/0, yes/no, on/off, t/f, y/n)` };
    given.push([name, TRUE_WORDS.has(word)]);
  }
  const [first, second] = given;
  if (first && second && first[1] !== second[1]) return { ok: false, error: `${EVENTS_FLAG}=${first[1]} and ${EVENTS_FLAG_ALIAS}=${second[1]} disagree` };
  return { ok: true, value: first?.[1] ?? true };
}

/** Parses from_index, limit, include_events (alias include_details) and wait_for_seconds; an error string means 400. */
export function parseChangesQuery(params: URLSearchParams): { ok: true; query: ChangesQuery } | { ok: false; error: string } {
  const fromRaw = params.get('from_index');
  const limitRaw = params.get('limit');
  const waitRaw = params.get('wait_for_seconds');

  if (fromRaw !== null && !INTEGER.test(fromRaw)) return { ok: false, error: 'from_index must be a non-negative integer' };
  // limit=0 is refused: an answer that can never carry an event would stall a paging client.
  if (limitRaw !== null && (!INTEGER.test(limitRaw) || Number(limitRaw) === 0)) return { ok: false, error: 'limit must be a positive integer' };
  const includeEvents = parseEventsFlag(params);
  if (!includeEvents.ok) return includeEvents;
  if (waitRaw !== null && !DECIMAL.test(waitRaw)) return { ok: false, error: 'wait_for_seconds must be a non-negative number' };

  const fromIndex = fromRaw === null ? 0 : Number(fromRaw);
  const limit = limitRaw === null ? DEFAULT_LIMIT : Number(limitRaw);
  if (!Number.isSafeInteger(fromIndex)) return { ok: false, error: 'from_index is too large' };
  return {
    ok: true,
    query: {
      fromIndex,
      limit: Number.isSafeInteger(limit) ? limit : Number.MAX_SAFE_INTEGER,
      includeEvents: includeEvents.value,
      waitSeconds: waitRaw === null ? 0 : Number(waitRaw),
    },
  };
}

/** True when the raw query asks the server to hold the request (for the zero/waiting counters). */
export function asksToWait(params: URLSearchParams): boolean {
  const raw = params.get('wait_for_seconds');
  return raw !== null && DECIMAL.test(raw) && Number(raw) > 0;
}
