/** Request validation: everything a caller sends is checked here before any upstream call. */
import { BadRequestError } from '../errors.ts';

/** CONTRACT.md section 3: the only session ids pollcast forwards upstream. */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A path segment percent-decoded, or undefined when it does not decode. */
export function decodedSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** Returns the id if it matches the contract's pattern, else throws 400. */
export function parseSessionId(raw: string | undefined): string {
  if (raw === undefined || !SESSION_ID_PATTERN.test(raw)) {
    throw new BadRequestError('invalid session id: expected 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit');
  }
  return raw;
}

/**
 * The one value of a query parameter that takes one: undefined when absent; repeated with different
 * values (`offset=now&offset=-1`) is a 400 rather than a silent choice of one of them.
 */
export function singleQuery(name: string, values: readonly string[] | undefined): string | undefined {
  if (values === undefined || values.length === 0) return undefined;
  for (let i = 1; i < values.length; i++) {
    if (values[i] !== values[0]) throw new BadRequestError(`${name} is given more than once with different values; send it once`);
  }
  return values[0];
}

/** The 400 of a `last_event_id` given with no value (a client's empty "last id": leave the parameter out instead). */
export const EMPTY_LAST_EVENT_ID = 'last_event_id is empty: give the id of the last event received, or leave the parameter out';

/** Parses a non-negative integer index (decimal digits only, at most 2^53 - 1). */
export function parseIndex(name: string, raw: string): number {
  // No trimming: `from_index=+1` reaches here as " 1" (form decoding), which is not an integer.
  if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw new BadRequestError(`${name} must be a non-negative integer`);
  }
  return Number(raw);
}

// The spellings the upstream's own query parsing (pydantic) takes for a boolean, in any case: a
// client written against the upstream gets the same meaning here, and anything else is a 400.
const TRUE_SPELLINGS = new Set(['true', '1', 'on', 't', 'y', 'yes']);
const FALSE_SPELLINGS = new Set(['false', '0', 'off', 'f', 'n', 'no']);

function parseBool(name: string, raw: string): boolean {
  const word = raw.length <= 5 ? raw.toLowerCase() : '';
  if (TRUE_SPELLINGS.has(word)) return true;
  if (FALSE_SPELLINGS.has(word)) return false;
  throw new BadRequestError(`${name} must be true or false (also accepted, as by the sessions API: 1/0, yes/no, on/off, t/f, y/n, any case)`);
}

/**
 * Parses `include_events` (the API's name) or `include_details` (its older
 * alias): absent → true. Both given and disagreeing is a 400.
 */
export function parseIncludeEvents(includeEvents: string | undefined, includeDetails?: string): boolean {
  const a = includeEvents === undefined || includeEvents === '' ? undefined : parseBool('include_events', includeEvents);
  const b = includeDetails === undefined || includeDetails === '' ? undefined : parseBool('include_details', includeDetails);
  if (a !== undefined && b !== undefined && a !== b) throw new BadRequestError('include_events and include_details disagree; send include_events only');
  return a ?? b ?? true;
}

/** Parses a positive integer `limit`, clipped to `max`. */
export function parseLimit(raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined || raw === '') return fallback;
  // One message for 0, -1 and anything else that is not a count.
  const value = /^\d{1,64}$/.test(raw) ? Number(raw) : 0;
  if (value < 1) throw new BadRequestError('limit must be a positive integer');
  return Math.min(value, max);
}

/** Parses `wait_for_seconds` (a non-negative number, any size: the API caps it, and so does this), clipped to `max`. */
export function parseWaitSeconds(raw: string | undefined, max: number): number {
  if (raw === undefined || raw === '') return 0;
  if (!/^\d{1,64}(\.\d{1,64})?$/.test(raw)) throw new BadRequestError('wait_for_seconds must be a non-negative number');
  return Math.min(Number(raw), max);
}

/**
 * Where a stream starts: after `Last-Event-ID` if sent (an empty header, which
 * no EventSource sends, counts as absent), else after the `last_event_id`
 * query parameter (a new EventSource cannot set the header; given empty, it is
 * a 400 as any value that is not an index), else `from_index`, else 0. A
 * value given but passed over is checked too.
 */
export function parseStartIndex(lastEventId: string | undefined, fromIndex: string | undefined, lastEventIdQuery?: string): number {
  const header = lastEventId !== undefined && lastEventId.trim() !== '' ? parseIndex('Last-Event-ID', lastEventId) + 1 : undefined;
  // Every start given is checked, also one the order above passes over: a bad value is a mistake either way.
  if (lastEventIdQuery === '') throw new BadRequestError(EMPTY_LAST_EVENT_ID);
  const query = lastEventIdQuery === undefined ? undefined : parseIndex('last_event_id', lastEventIdQuery) + 1;
  const from = fromIndex === undefined ? undefined : parseIndex('from_index', fromIndex);
  return header ?? query ?? from ?? 0;
}
