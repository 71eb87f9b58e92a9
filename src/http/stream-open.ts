/**
 * Opening `GET /sessions/{id}/events`: validation, authorization, the stream
 * slot, the feed, then the stream. Shared by the hono route and the fast path
 * that serves most stream opens without hono's per-request objects.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { streamAccess, type Credentials, type Grant } from './auth.ts';
import type { AppDeps } from './deps.ts';
import { holdAndClaim, type HeldStream } from './stream-hold.ts';
import { parseIncludeEvents, parseSessionId, parseStartIndex } from './validate.ts';
import { UpstreamUnavailableError } from '../errors.ts';
import { FIRST_ANSWER_GRACE_MS } from '../upstream/poller.ts';
import type { FeedEntry } from '../hub/hub.ts';
import { dropOpen, responseGone, type StreamResponse } from '../hub/writer.ts';

/** What a stream open carries, read from the request by whichever layer received it. */
export interface StreamAsk {
  /** The decoded `{id}` path segment (undefined when it could not be decoded). */
  rawId: string | undefined;
  lastEventId: string | undefined;
  /** The `last_event_id` query parameter (the header wins over it). */
  lastEventIdQuery?: string | undefined;
  fromIndex: string | undefined;
  includeEvents: string | undefined;
  includeDetails: string | undefined;
  credentials: Credentials;
  /** A HEAD: it opens no stream, so a key check is waited for (no grace). */
  head?: boolean;
}

/** A caller the upstream could not judge yet (AUTH=upstream during an outage), and how to ask again. */
export interface Unjudged {
  unjudged: UpstreamUnavailableError;
  judge: () => Promise<Grant>;
}

/**
 * How long a stream open (not a HEAD) waits for the upstream to judge a key (AUTH=upstream) before it opens held, the
 * check still under way: as long as a loop's first contact may take before its streams open (contract section 3).
 */
export const JUDGE_GRACE_MS = FIRST_ANSWER_GRACE_MS;

/**
 * Asks `authorize` for a grant; an upstream that cannot judge the key is not a refusal: the stream is held
 * (stream-hold.ts). A stream about to open (`opening`: a GET or a multi-session POST, not a HEAD, which opens nothing) waits at most
 * JUDGE_GRACE_MS for it.
 */
export async function grantOrUnjudged(deps: AppDeps, credentials: Credentials, ids: readonly string[], opening: boolean): Promise<Grant | Unjudged> {
  try {
    return await deps.authorize(credentials, ids, opening ? { judgeWithinMs: JUDGE_GRACE_MS } : undefined);
  } catch (err) {
    if (err instanceof UpstreamUnavailableError) return { unjudged: err, judge: () => deps.authorize(credentials, ids) };
    throw err;
  }
}

/** Whether the upstream could not judge the caller yet. */
export function isUnjudged(grant: Grant | Unjudged): grant is Unjudged {
  return 'unjudged' in grant;
}

/** A stream open that passed every check (its grant, or a key still to be judged). */
export interface CheckedAsk {
  id: string;
  start: number;
  includeEvents: boolean;
  grant: Grant | Unjudged;
}

/** Validates and authorizes an open (throws 400/401/403); null while shutting down, when the caller must drop the connection. */
export async function checkStreamAsk(ask: StreamAsk, deps: AppDeps): Promise<CheckedAsk | null> {
  const id = parseSessionId(ask.rawId);
  const start = parseStartIndex(ask.lastEventId, ask.fromIndex, ask.lastEventIdQuery);
  const includeEvents = parseIncludeEvents(ask.includeEvents, ask.includeDetails);
  // EventSource gives up for good on a 503 but retries a dropped connection
  // (with Last-Event-ID): so it reconnects to another instance, or to this one once restarted.
  if (deps.isShuttingDown()) return null;
  return { id, start, includeEvents, grant: await grantOrUnjudged(deps, ask.credentials, [id], ask.head !== true) };
}

/**
 * Reserves the client's stream slot, holds the stream while the upstream
 * cannot judge the key (AUTH=upstream), acquires the feed (starting its loop
 * if none runs) and starts the stream on `res`. Throws a refusal before any
 * byte is written; returns false when the client left (or shutdown began)
 * meanwhile, or a held stream was refused.
 */
export async function startSessionStream(checked: CheckedAsk, clientKey: string, extraHeaders: OutgoingHttpHeaders, res: StreamResponse, deps: AppDeps): Promise<boolean> {
  // Reserved before the first upstream await, so concurrent opens cannot overshoot a limit;
  // given back exactly once: on any failure below, or when the stream closes.
  // A key not judged yet counts against no session's limit until it is accepted (holdAndClaim).
  const slot = deps.limits.streams.reserve(clientKey, isUnjudged(checked.grant) ? [] : [checked.id]);
  let grant: Grant;
  let held: HeldStream | undefined;
  if (isUnjudged(checked.grant)) {
    const judged = await holdAndClaim(res, { ids: [checked.id], multi: false, extraHeaders, ...checked.grant }, slot, deps);
    if (judged === null) return false;
    ({ held, grant } = judged);
  } else grant = checked.grant;
  let entry: FeedEntry;
  try {
    entry = deps.hub.forNewStream(await deps.hub.acquire(checked.id, checked.includeEvents, checked.start, grant.upstreamCredential));
  } catch (err) {
    slot.release();
    if (held) {
      held.abandon(err, deps.isShuttingDown());
      return false;
    }
    // Shutdown began while the open waited for its first upstream answer: dropped, not refused with a 503.
    if (deps.isShuttingDown()) {
      dropOpen(res);
      return false;
    }
    throw err;
  }
  if (responseGone(res) || deps.isShuttingDown() || held?.closed) {
    slot.release();
    deps.hub.release(entry);
    if (held) held.close(deps.isShuttingDown() ? 'shutdown' : 'client');
    else dropOpen(res);
    return false;
  }
  if (held) deps.streams.handOver(held);
  try {
    deps.streams.start(entry, res, checked.start, { extraHeaders, slot, access: streamAccess(grant), continues: held !== undefined });
  } catch (err) {
    slot.release();
    // The head is out: no refusal can be answered any more.
    if (held) {
      deps.log.error({ err, session: checked.id }, 'a held stream could not go on');
      dropOpen(res);
      return false;
    }
    throw err;
  }
  return true;
}
