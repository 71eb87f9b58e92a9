/** The validated query of a changes request (before the server's caps). */
export interface ChangesQuery {
  fromIndex: number;
  limit: number;
  includeDetails: boolean;
  waitSeconds: number;
}

/** Events per changes answer when the client names no limit. */
export const DEFAULT_LIMIT = 100;

const INTEGER = /^\d+$/;
const DECIMAL = /^\d+(\.\d+)?$/;

/** Parses from_index, limit, include_details and wait_for_seconds; an error string means 400. */
export function parseChangesQuery(params: URLSearchParams): { ok: true; query: ChangesQuery } | { ok: false; error: string } {
  const fromRaw = params.get('from_index');
  const limitRaw = params.get('limit');
  const detailsRaw = params.get('include_details');
  const waitRaw = params.get('wait_for_seconds');

  if (fromRaw !== null && !INTEGER.test(fromRaw)) return { ok: false, error: 'from_index must be a non-negative integer' };
  // limit=0 is refused: an answer that can never carry an event would stall a paging client.
  if (limitRaw !== null && (!INTEGER.test(limitRaw) || Number(limitRaw) === 0)) return { ok: false, error: 'limit must be a positive integer' };
  if (detailsRaw !== null && detailsRaw !== 'true' && detailsRaw !== 'false') return { ok: false, error: 'include_details must be true or false' };
  if (waitRaw !== null && !DECIMAL.test(waitRaw)) return { ok: false, error: 'wait_for_seconds must be a non-negative number' };

  const fromIndex = fromRaw === null ? 0 : Number(fromRaw);
  const limit = limitRaw === null ? DEFAULT_LIMIT : Number(limitRaw);
  if (!Number.isSafeInteger(fromIndex)) return { ok: false, error: 'from_index is too large' };
  return {
    ok: true,
    query: {
      fromIndex,
      limit: Number.isSafeInteger(limit) ? limit : Number.MAX_SAFE_INTEGER,
      includeDetails: detailsRaw !== 'false',
      waitSeconds: waitRaw === null ? 0 : Number(waitRaw),
    },
  };
}

/** True when the raw query asks the server to hold the request (for the zero/waiting counters). */
export function asksToWait(params: URLSearchParams): boolean {
  const raw = params.get('wait_for_seconds');
  return raw !== null && DECIMAL.test(raw) && Number(raw) > 0;
}
