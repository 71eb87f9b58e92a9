/**
 * The shared log of one session loop (one session and include_events value)
 * in Redis: three keys under one hash tag, and the Lua scripts that write and
 * read them. Every write is one script that first checks the writer's lease
 * and fencing token, so a deposed leader's late append, or an index written
 * twice, fails inside Redis whatever the writer believes.
 *
 * Keys (`P` = REDIS_KEY_PREFIX, `T` = `d:<id>` with details, `n:<id>` without):
 *   P{T}:lease  string `<token>:<instance>`, PX = the lease
 *   P{T}:meta   hash: fence (last token, from HINCRBY), born (log identity),
 *               base, next (first and next event index), until (when the
 *               lease runs out unless renewed, Redis time ms), state (latest
 *               LogState JSON), status_since (when the status it shows was
 *               first written, Redis time ms), state_id (the stream id of the
 *               entry that wrote state), end ('over' once the session
 *               is over), released ('1' when the last leader let go)
 *   P{T}:log    stream, trimmed with MAXLEN ~: event i at id `(i+1)-0`
 *               (field e = the event's JSON); status updates at `n-k`, k ≥ 1,
 *               where n is the next event index (0 while the log holds no
 *               event, so a log that moves its start back can still write
 *               event 0); field s = LogState JSON, x = end reason when the
 *               update ends the session, n = the log's next event index
 *               then, t = status_since then, r = a leader released the lease.
 * meta and log expire REDIS_RETENTION_SECONDS after the last write or renewal.
 */
import type { Snapshot } from '../upstream/snapshot.ts';
import { retryAtPart, type EmptyAnswerStyle, type LoopUpdate } from '../upstream/sink.ts';
import type { UpstreamEvent } from '../upstream/types.ts';
import { lua } from './redis-conn.ts';

/** The keys of one session loop's log. */
export interface LogKeys {
  lease: string;
  meta: string;
  log: string;
}

/** Keys of the log of `sessionId` (with or without event details). Ids are validated (no braces), so the tag is the id. */
export function logKeys(prefix: string, sessionId: string, includeEvents: boolean): LogKeys {
  const tag = `${prefix}{${includeEvents ? 'd' : 'n'}:${sessionId}}`;
  return { lease: `${tag}:lease`, meta: `${tag}:meta`, log: `${tag}:log` };
}

/** What a loop's update says besides its events: the whole status side of a LoopUpdate. */
export interface LogState {
  snapshot: Snapshot;
  upstreamError: string | null;
  synced: boolean;
  /** Written only when true (LoopUpdate.failing); a log written before it was kept reads as false. */
  failing?: boolean;
  /** Written only while failing (LoopUpdate.retryAtMs). */
  retryAtMs?: number;
  emptyStyle?: EmptyAnswerStyle;
}

/** The log state of an update's status side (or of a feed's, which holds the same fields): optional fields only when set. */
export function logStateOf(from: Pick<LoopUpdate, 'snapshot' | 'upstreamError' | 'synced' | 'failing' | 'retryAtMs' | 'emptyStyle'>): LogState {
  return { snapshot: from.snapshot, upstreamError: from.upstreamError, synced: from.synced, ...(from.failing ? { failing: true } : {}), ...retryAtPart(from.failing, from.retryAtMs), ...(from.emptyStyle ? { emptyStyle: from.emptyStyle } : {}) };
}

/** Why a log ended: 'over' (kept, served to late readers) or 'refused' (only live readers end; the next leader goes on). */
export type LogEnd = 'over' | 'refused';

/** One entry of the stream, decoded. */
export type LogEntry =
  | { kind: 'event'; id: string; index: number; event: UpstreamEvent }
  | { kind: 'state'; id: string; state: LogState; end: LogEnd | null; next: number | null; since: number | null }
  | { kind: 'released'; id: string };

/** The stream id of event `index`. */
export const eventId = (index: number): string => `${index + 1}-0`;

/** The stream id at which entries of events from `index` on start (exclusive: the statuses after event index-1 follow it). */
export const afterEventsBefore = (index: number): string => `${index}-0`;

/** Whether stream id `a` (`major-seq`) comes no later than `b` in the log. */
export function idAtOrBefore(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am < bm || (am === bm && as <= bs);
}

type RawEntry = [string, string[]];

/** Decodes one raw stream entry; null for an entry this version does not know. */
export function decodeEntry([id, fields]: RawEntry): LogEntry | null {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  const major = Number(id.slice(0, id.indexOf('-')));
  if (f.e !== undefined) return { kind: 'event', id, index: major - 1, event: JSON.parse(f.e) as UpstreamEvent };
  // The log's next index when the status was written: field n, else the id's major part (0: not known).
  const next = f.n !== undefined ? Number(f.n) : major > 0 ? major : null;
  if (f.s !== undefined) {
    const since = f.t !== undefined ? Number(f.t) : null;
    return { kind: 'state', id, state: JSON.parse(f.s) as LogState, end: f.x === 'over' || f.x === 'refused' ? f.x : null, next, since };
  }
  if (f.r !== undefined) return { kind: 'released', id };
  return null;
}

/** Decodes raw entries, dropping unknown ones. */
export function decodeEntries(raw: readonly RawEntry[] | null): LogEntry[] {
  const out: LogEntry[] = [];
  for (const r of raw ?? []) {
    const e = decodeEntry(r);
    if (e) out.push(e);
  }
  return out;
}

/** The meta hash, decoded. */
export interface LogMeta {
  born: string | null;
  base: number | null;
  next: number | null;
  state: LogState | null;
  /** When the status `state` shows was first written (Redis time ms); null from a writer that did not say. */
  statusSince: number | null;
  /** The stream id of the entry that wrote `state`; null from a writer that did not say. */
  stateId: string | null;
  ended: boolean;
}

/** Decodes HGETALL's flat reply. */
export function decodeMeta(flat: readonly string[] | null): LogMeta {
  const f: Record<string, string> = {};
  for (let i = 0; flat && i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
  return {
    born: f.born ?? null,
    base: f.base !== undefined ? Number(f.base) : null,
    next: f.next !== undefined ? Number(f.next) : null,
    state: f.state !== undefined ? (JSON.parse(f.state) as LogState) : null,
    statusSince: f.status_since !== undefined ? Number(f.status_since) : null,
    stateId: f.state_id ?? null,
    ended: f.end === 'over',
  };
}

// Shared by the scripts: Redis's clock in ms (the same clock for every instance).
const NOW_MS = `
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

// Shared by the scripts: the id of the next status-like entry (after the stream's top entry), or
// false when the stream's top lies beyond it (the log and its meta disagree: write nothing).
const STATUS_ID = `
local function statusId(meta, log)
  local nxt = tonumber(redis.call('HGET', meta, 'next') or '0')
  local base = tonumber(redis.call('HGET', meta, 'base') or '0')
  local major = nxt
  if nxt == base then major = 0 end
  local seq = 1
  local top = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)[1]
  if top then
    local tmaj, tseq = string.match(top[1], '^(%d+)-(%d+)$')
    tmaj = tonumber(tmaj)
    if tmaj > major then return false end
    if tmaj == major then seq = tonumber(tseq) + 1 end
  end
  return major .. '-' .. seq
end
`;

/**
 * Appends one loop update. KEYS: lease, meta, log. ARGV: lease value, token,
 * resetTo ('' or the index an empty log starts at), fromIndex, max entries,
 * retention ms, state JSON ('' when unchanged), end ('', 'over', 'refused'),
 * shown ('1' when the status readers see differs from the last state's, else
 * '0': the entry keeps its status_since, so every reader dates it alike),
 * then the events' JSON. Replies {'ok', next} or a refusal: {'lease'} (not
 * the holder), {'fence'} (an older token), {'ended'}, {'index', next}
 * (fromIndex is not the log's next index: a duplicate or a gap).
 */
export const APPEND = lua(`${NOW_MS}${STATUS_ID}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lease'} end
if tonumber(ARGV[2]) < tonumber(redis.call('HGET', KEYS[2], 'fence') or '0') then return {'fence'} end
if redis.call('HGET', KEYS[2], 'end') then return {'ended'} end
local nxt = tonumber(redis.call('HGET', KEYS[2], 'next') or '-1')
local base = tonumber(redis.call('HGET', KEYS[2], 'base') or '-1')
if nxt < 0 or (nxt == base and ARGV[3] ~= '') then
  if ARGV[3] ~= '' then nxt = tonumber(ARGV[3]) else nxt = tonumber(ARGV[4]) end
  base = nxt
  redis.call('HSET', KEYS[2], 'base', base, 'next', nxt)
end
local n = #ARGV - 9
if n > 0 then
  if tonumber(ARGV[4]) ~= nxt then return {'index', nxt} end
  local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)[1]
  if top and tonumber(string.match(top[1], '^(%d+)-')) > nxt then return {'index', nxt} end
  for k = 1, n do
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], (nxt + 1) .. '-0', 'e', ARGV[9 + k])
    nxt = nxt + 1
  end
  redis.call('HSET', KEYS[2], 'next', nxt)
end
if ARGV[7] ~= '' or ARGV[8] ~= '' then
  local state = ARGV[7]
  if state == '' then state = redis.call('HGET', KEYS[2], 'state') or '' end
  local id = statusId(KEYS[2], KEYS[3])
  if not id then return {'index', nxt} end
  -- One clock for the cluster, strictly increasing per log: a status shown anew is dated now, else keeps its date.
  local since = tonumber(redis.call('HGET', KEYS[2], 'status_since') or '0') or 0
  if ARGV[9] == '1' or since == 0 then since = math.max(nowMs(), since + 1) end
  since = string.format('%d', since)
  if ARGV[8] ~= '' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 's', state, 'n', nxt, 't', since, 'x', ARGV[8])
  else
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 's', state, 'n', nxt, 't', since)
  end
  redis.call('HSET', KEYS[2], 'state', state, 'status_since', since, 'state_id', id)
  if ARGV[8] == 'over' then redis.call('HSET', KEYS[2], 'end', 'over') end
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return {'ok', nxt}
`);

/** Reads meta and a page of entries at one instant. KEYS: meta, log. ARGV: start id (XRANGE syntax), count. */
export const READ = lua(`
return {redis.call('HGETALL', KEYS[1]), redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])}
`);

/**
 * Takes the lease if nobody holds it (SET NX PX, token from HINCRBY on the
 * meta's fence), or keeps it when ARGV[4] says it is still ours. KEYS: lease,
 * meta. ARGV: instance id, lease ms, retention ms, our last lease value or
 * '', identity for a new log. Replies {'ended', born}, {'held', born, pttl},
 * or {'acquired', born, token, takeover 0/1, next, base, state}.
 */
export const ACQUIRE = lua(`${NOW_MS}
local born = redis.call('HGET', KEYS[2], 'born')
if redis.call('HGET', KEYS[2], 'end') then return {'ended', born or ''} end
local holder = redis.call('GET', KEYS[1])
local now = nowMs()
local token
local takeover = 0
if holder and holder == ARGV[4] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  token = tonumber(string.match(holder, '^(%d+):'))
elseif holder then
  return {'held', born or '', redis.call('PTTL', KEYS[1])}
else
  -- A lease key gone before its time (evicted, deleted): its holder may run until it next renews.
  local untilMs = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')
  if untilMs > now then return {'held', born or '', untilMs - now} end
  if not born then born = ARGV[5]; redis.call('HSET', KEYS[2], 'born', born) end
  token = redis.call('HINCRBY', KEYS[2], 'fence', 1)
  if not redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2]) then return {'held', born, redis.call('PTTL', KEYS[1])} end
  if token > 1 and redis.call('HGET', KEYS[2], 'released') ~= '1' then takeover = 1 end
  redis.call('HSET', KEYS[2], 'released', '0')
end
redis.call('HSET', KEYS[2], 'until', string.format('%d', now + tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local m = redis.call('HMGET', KEYS[2], 'next', 'base', 'state', 'hold_until')
local holdMs = math.max(0, (tonumber(m[4] or '0') or 0) - now)
return {'acquired', born, token, takeover, m[1], m[2], m[3], holdMs}
`);

/**
 * Records that the upstream asked the session's loop to wait (Retry-After), on Redis's clock, so a leader that takes
 * over keeps to it. KEYS: meta. ARGV: wait ms. A later end than the one recorded only.
 */
export const HOLD_OFF = lua(`${NOW_MS}
local untilMs = nowMs() + tonumber(ARGV[1])
if untilMs > tonumber(redis.call('HGET', KEYS[1], 'hold_until') or '0') then redis.call('HSET', KEYS[1], 'hold_until', string.format('%d', untilMs)) end
return 1
`);

/** Extends the lease if still ours, and the log's retention. KEYS: lease, meta, log. ARGV: value, lease ms, retention ms. Replies {'ok'|'lost', born}. */
export const RENEW = lua(`${NOW_MS}
local born = redis.call('HGET', KEYS[2], 'born') or ''
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lost', born} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'until', string.format('%d', nowMs() + tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return {'ok', born}
`);

/**
 * Lets the lease go if still ours, and (for a session not over) leaves a
 * marker in the log so followers try to take over at once. KEYS: lease,
 * meta, log. ARGV: value, max entries, retention ms. Replies 1 or 0.
 */
export const RELEASE = lua(`${STATUS_ID}
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'released', '1')
redis.call('HDEL', KEYS[2], 'until')
if not redis.call('HGET', KEYS[2], 'end') then
  local id = statusId(KEYS[2], KEYS[3])
  if id then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], id, 'r', '1')
    redis.call('PEXPIRE', KEYS[3], ARGV[3])
  end
end
return 1
`);

/**
 * Drops a log nobody ever wrote (the upstream refused the session at first
 * contact: nothing is kept for a session it has not confirmed), if the lease
 * is still ours. KEYS: lease, meta, log. ARGV: lease value. Replies 1 when
 * dropped, 0 when not ours or written (then release it as usual).
 */
export const DISCARD = lua(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], 'next') then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
`);

/** Whether anyone holds the lease. KEYS: lease. Replies its PTTL in ms (-2: nobody holds it). */
export const LEASE_TTL = lua(`return redis.call('PTTL', KEYS[1])`);
