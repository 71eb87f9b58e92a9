/**
 * What a multiplexed stream request asks for (`GET /events?session=a&session=b`,
 * `?sessions=a,b`, or `POST /events` with `{"sessions": [...]}`), validated
 * before anything is acquired: the session list (each id checked, duplicates
 * collapsed, at most MAX_SESSIONS_PER_STREAM), the mode, the details flag and
 * every session's start position (from the cursor in Last-Event-ID, else in
 * the `last_event_id` query parameter, else `from_index`, else 0).
 */
import type { Context } from 'hono';
import type { AppEnv } from './env.ts';
import { EMPTY_LAST_EVENT_ID, parseIncludeEvents, parseIndex, parseSessionId, singleQuery } from './validate.ts';
import { canonicalOrder, cursorKey, decodeCursor, ENDED, MAX_CURSOR_VALUE } from '../hub/cursor.ts';
import type { MuxMode } from '../hub/mux-subscriber.ts';
import { isHttp1 } from '../hub/writer.ts';
import { BadRequestError, PayloadTooLargeError, RequestTimeoutError } from '../errors.ts';

/** Largest `POST /events` body read (bytes): 1,000 ids of 128 characters with their quotes fit. */
export const MAX_EVENTS_BODY_BYTES = 192 * 1024;

/** A validated multiplexed stream request. */
export interface MuxRequest {
  /** Session ids, duplicates collapsed, in the canonical (cursor) order. */
  ids: string[];
  mode: MuxMode;
  includeEvents: boolean;
  /** The cursor's list key for these ids and this mode. */
  key: Buffer;
  /** Per id, its cursor value to start from: ENDED, or the next index + 1. */
  values: number[];
}

/** The session ids of the query: every `session`, then every comma-separated `sessions` (raw, unchecked). */
export function idsFromQuery(c: Context<AppEnv>): string[] {
  const single = c.req.queries('session') ?? [];
  const lists = (c.req.queries('sessions') ?? []).flatMap((v) => v.split(','));
  return [...single, ...lists];
}

/**
 * The request body as text, refused past `maxBytes` (413) as soon as the
 * declared length or the bytes read so far pass it, whatever the framing
 * (Content-Length, chunked, HTTP/2 DATA frames).
 */
async function readBody(c: Context<AppEnv>, maxBytes: number, idleSeconds: number): Promise<string> {
  const declared = Number(c.req.header('content-length') ?? 0);
  if (declared > maxBytes) throw new PayloadTooLargeError(maxBytes);
  const stream = c.req.raw.body;
  if (!stream) return '';
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  // A body that stops arriving is refused (408); the connection closes after the answer. (Timed per read, not
  // by a listener on the request, which could take bytes before the adapter's body stream is attached.)
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      let next;
      try {
        timer = setTimeout(() => {
          stalled = true;
          void reader.cancel().catch(() => undefined);
        }, idleSeconds * 1000);
        next = await reader.read();
      } catch {
        // The client went away mid-body: nobody reads the answer, and it is not pollcast's failure.
        throw new BadRequestError('the request body broke off');
      } finally {
        clearTimeout(timer);
      }
      if (stalled) throw new RequestTimeoutError(idleSeconds);
      if (next.done) break;
      size += next.value.length;
      if (size > maxBytes) {
        await reader.cancel();
        throw new PayloadTooLargeError(maxBytes);
      }
      chunks.push(next.value);
    }
  } catch (err) {
    const outgoing = (c.env as Partial<AppEnv['Bindings']> | undefined)?.outgoing;
    // The rest of the body is not waited for: the connection closes after the answer.
    if (outgoing && isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
    throw err;
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** The session ids of a `POST /events` body: exactly `{"sessions": ["a", "b", …]}`. */
export async function idsFromBody(c: Context<AppEnv>, bodyIdleSeconds: number): Promise<string[]> {
  // Said before the body is read: a POST whose sessions are in the query (with an empty body, say) was told "not both".
  if (idsFromQuery(c).length > 0) throw new BadRequestError('a POST takes its sessions in the body, {"sessions": [...]}, not in the query (GET takes ?session=)');
  let body: unknown;
  const text = await readBody(c, MAX_EVENTS_BODY_BYTES, bodyIdleSeconds);
  try {
    body = JSON.parse(text);
  } catch {
    throw new BadRequestError('body must be JSON: {"sessions": ["id", ...]}');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequestError('body must be a JSON object: {"sessions": ["id", ...]}');
  const extra = Object.keys(body).filter((k) => k !== 'sessions');
  // Unknown fields are refused rather than ignored: a misspelt option would otherwise pass silently.
  if (extra.length > 0) throw new BadRequestError('body has fields other than "sessions"; options go in the query string');
  const sessions = (body as { sessions?: unknown }).sessions;
  if (!Array.isArray(sessions) || !sessions.every((s) => typeof s === 'string')) throw new BadRequestError('"sessions" must be an array of session id strings');
  return sessions as string[];
}

function parseMode(raw: string | undefined): MuxMode {
  if (raw === undefined || raw === '' || raw === 'events') return 'events';
  if (raw === 'overview') return 'overview';
  throw new BadRequestError('mode must be events or overview');
}

/** Validates a multiplexed request; throws BadRequestError (400) on anything wrong. */
export function parseMuxRequest(c: Context<AppEnv>, rawIds: readonly string[], maxSessions: number): MuxRequest {
  if (rawIds.length === 0) throw new BadRequestError('name at least one session: ?session=a&session=b, ?sessions=a,b, or POST {"sessions": [...]}');
  const unique = [...new Set(rawIds)];
  if (unique.length > maxSessions) throw new BadRequestError(`at most ${maxSessions} sessions per stream (MAX_SESSIONS_PER_STREAM); ${unique.length} asked for`);
  for (const id of unique) parseSessionId(id);
  const ids = canonicalOrder(unique);
  const mode = parseMode(singleQuery('mode', c.req.queries('mode')));
  // In overview mode no event goes out, so the details flag only picks which loop's status is read.
  const includeEvents = parseIncludeEvents(singleQuery('include_events', c.req.queries('include_events')), singleQuery('include_details', c.req.queries('include_details')));
  const fromRaw = singleQuery('from_index', c.req.queries('from_index'));
  const fromIndex = fromRaw === undefined ? 0 : parseIndex('from_index', fromRaw);
  // The cursor holds index + 1, which must stay a safe integer.
  if (fromIndex >= MAX_CURSOR_VALUE) throw new BadRequestError('from_index is beyond the largest index');
  const key = cursorKey(mode, ids);
  // The header (a browser's reconnect) wins over the query (a new EventSource resuming, which cannot set it).
  const header = c.req.header('last-event-id');
  const lastEventId = header !== undefined && header.trim() !== '' ? header : singleQuery('last_event_id', c.req.queries('last_event_id'));
  if (lastEventId !== undefined && lastEventId.trim() === '') throw new BadRequestError(EMPTY_LAST_EVENT_ID);
  let values: number[];
  if (lastEventId !== undefined) {
    values = decodeCursor(lastEventId, key, ids.length);
    if (mode === 'overview' && values.some((v) => v > 1)) throw new BadRequestError('Last-Event-ID holds event positions, which an overview stream has none of');
  } else values = ids.map(() => (mode === 'overview' ? 1 : fromIndex + 1));
  return { ids, mode, includeEvents, key, values };
}

/** The ids the stream still reads (those whose `end` the client has not had yet). */
export function openIds(req: MuxRequest): string[] {
  return req.ids.filter((_, i) => req.values[i] !== ENDED);
}
