/**
 * One read of a session's Durable Stream from its hub feed: the messages
 * from a position on (a chunk of events, then at the head the current status
 * or the end record) and where the next read starts. Every read mode of
 * durable-route.ts is built from it; the events come from the feed's buffer
 * or, below it, through the hub's history path (as late SSE readers get them).
 */
import type { AppDeps } from './deps.ts';
import { draining, readHistory, UNSETTLED_RETRY_AFTER_SECONDS, UNSETTLED_WAIT_MS, waitFor } from './dropin-routes.ts';
import { CATCH_UP_MAX_BYTES, CHUNK_MAX_BYTES, chunkEnd, messageBytes, recordMessage, type Message, type Position } from './durable-offsets.ts';
import type { Feed } from '../hub/feed.ts';
import { eventFrame, frameData, frameDataParts } from '../hub/frames.ts';
import type { FeedEntry } from '../hub/hub.ts';
import { changesClaimOver, isKnown } from '../upstream/snapshot.ts';
import type { UpstreamEvent } from '../upstream/types.ts';
import { BadRequestError, BehindOffsetError, UpstreamUnavailableError } from '../errors.ts';

/** Seconds a reader is told to wait when held-out history could not be read. */
const HISTORY_RETRY_AFTER_SECONDS = 5;
/** How long an offset past a live feed's tail waits for the feed to reach it before it is refused (ms). */
export const BEYOND_TAIL_WAIT_MS = 1_000;
/**
 * How far an offset's status part may be past this instance's clock (ms). A version is the time its status was
 * recorded (or one more than the last), by whichever instance or Redis recorded it, so none is later than now
 * beyond clock skew; one further on was never given, and a reader holding it would miss every status until then.
 * (A part past the status shown here is taken: it may come from an instance that served the session around
 * Redis, dated by its own clock.)
 */
export const STATUS_AHEAD_TOLERANCE_MS = 60_000;

/** What one read gives. */
export interface Batch {
  /** Each message as JSON bytes (views on the frames they come from, not copies). */
  messages: Message[];
  next: Position;
  /** The answer holds everything the stream has now (Stream-Up-To-Date). */
  upToDate: boolean;
  /** The end record was reached: nothing will ever follow (Stream-Closed). */
  closed: boolean;
  /** The range can no longer change (a cache may keep it as long as it likes). */
  fixed: boolean;
  /** It stopped short of its bound for want of history that exists (a read that failed or came back empty): no cache may keep it. */
  partial?: boolean;
  /**
   * It reached the head of a feed that may be behind the upstream (`headIsTail`): right as far as it goes, but no cache
   * may keep it, and a catch-up answer does not call it up to date (live reads go on waiting at the head as usual).
   */
  behind?: boolean;
}

/** The status a feed shows now, as a stream message with a version (0 while the upstream has not answered). */
interface StatusVersion {
  frame: Buffer;
  version: number;
  message: Buffer;
}

// A version is the time the status was first recorded (Feed.statusSinceMs: the shared log's clock in cluster mode,
// so every instance and restart gives the same status the same version), kept increasing per feed
// (docs/durable-streams.md says what a reader moving from a status of one instance's own sees).
const statusVersions = new WeakMap<Feed, StatusVersion>();

/** The feed's current status message and its version (a new version each time the status frame changes). */
export function currentStatus(feed: Feed): StatusVersion | null {
  if (!isKnown(feed.snapshot)) return null;
  const held = statusVersions.get(feed);
  if (held?.frame === feed.statusFrame) return held;
  const version = Math.max((held?.version ?? 0) + 1, feed.statusSinceMs);
  const next = { frame: feed.statusFrame, version, message: recordMessage('status', frameData(feed.statusFrame)) };
  statusVersions.set(feed, next);
  return next;
}

/** True when a reader at `pos` would get something from a read now (long-polls and SSE wait for it). */
export function hasNews(feed: Feed, pos: Position): boolean {
  if (pos.closed) return false;
  if (feed.ended || feed.nextIndex > pos.events) return true;
  const status = currentStatus(feed);
  return status !== null && status.version > pos.status;
}

/** The tail position now (HEAD, `offset=now`). */
export function tailOf(feed: Feed): Position {
  if (feed.ended) return { events: feed.nextIndex, closed: true };
  return { events: feed.nextIndex, status: currentStatus(feed)?.version ?? 0, closed: false };
}

/**
 * Waits (bounded) until the loop holds what the upstream had at its last
 * answer (or, reading from `from`, at least that chunk), so "up to date" is never said of a buffer still filling, and a
 * session that is over is not shown open while its last events drain.
 */
export async function settle(feed: Feed, from: number | 'tail', signal: AbortSignal): Promise<void> {
  // A read from `from` may go on as soon as its whole chunk is there; the tail only once settled.
  const enough = () => from !== 'tail' && feed.nextIndex >= chunkEnd(from);
  if (unsettled(feed)) await waitFor(feed, () => !unsettled(feed) || enough(), UNSETTLED_WAIT_MS, signal);
}

/** True while the loop is reading its way to the upstream's head, draining a session that is over, or has an end not yet confirmed. */
function unsettled(feed: Feed): boolean {
  // A changes answer that claims the end waits for `/status` to confirm it (the loop asks at once):
  // a reader told "open, up to date" then would be told "closed" a moment later at the same position.
  const claimUnconfirmed = feed.snapshot.statusBody === null && changesClaimOver(feed.snapshot);
  return !feed.ended && (!feed.synced || draining(feed) || claimUnconfirmed);
}

/**
 * Whether the feed's head is the stream's tail as far as anyone can tell: settled, and the loop's latest changes
 * call did not fail (the upstream may have events it could not read). Otherwise a read at the head says nothing
 * of being up to date, and no cache keeps it (the settle wait may have run out: a `429` with a long `Retry-After`).
 */
export function headIsTail(feed: Feed): boolean {
  return feed.ended || (!unsettled(feed) && !feed.failing);
}

/** Whether this instance may be behind another one of its cluster: it cannot read the shared log now, or only just can again. */
export function mayBeBehind(deps: Pick<AppDeps, 'clusterMayLag'>): boolean {
  return deps.clusterMayLag?.() === true;
}

/**
 * Settles the feed for a read at `pos` and refuses (400, or 503 where this instance may be behind: see below) an offset that cannot be a position of this stream: past
 * the end of a finished session, past the tail of a caught-up live one (PROTOCOL.md 5.6: a long-poll's 204 names
 * the tail, never a later offset), or closed while it goes on. A closed position is judged at the tail, so a fresh
 * feed is not taken for an open one. An offset past the tail waits a moment first: another instance may have given
 * it from a log this one has not applied yet.
 */
export async function checkedPosition(feed: Feed, pos: Position, signal: AbortSignal, behind: () => boolean): Promise<void> {
  await settle(feed, pos.closed ? 'tail' : pos.events, signal);
  if (!pos.closed && !feed.ended && pos.events > feed.nextIndex) await waitFor(feed, () => feed.ended || feed.nextIndex >= pos.events, BEYOND_TAIL_WAIT_MS, signal);
  if (pos.closed) {
    if (!feed.ended) throw new BadRequestError('invalid offset: past the end of a stream that is not closed');
    if (pos.events !== feed.nextIndex) throw new BadRequestError('invalid offset: not a position of this stream');
  } else if (pos.events > feed.nextIndex && !feed.ended && behind()) {
    // An instance of a cluster that cannot read the shared log now (Redis away or full), or reads it again since less
    // than about a lease (no leader writes it yet: a restarted Redis came back empty), may be behind another one,
    // which gave the offset (having served the session on its own): a reader there is told to retry, which the
    // Durable Streams client does, not refused for good. Read up to date or not: a loop that starts again in that
    // time (a new leader's) turns the feed unsynced for a moment, and the answer is the same.
    throw new BehindOffsetError();
  } else if (pos.events > feed.nextIndex && (feed.ended || feed.synced)) {
    // Alone, or reading the log, after the wait above: a live session's tail is what the cluster has read, an offset
    // past it is made up.
    throw new BadRequestError('invalid offset: beyond the end of this stream');
  } else if (pos.events > feed.nextIndex && !feed.ended) {
    // Not read up to date (the upstream slow or failing, the loop just started): pollcast cannot tell a later offset
    // it gave before from a made-up one. Taking it would name it as the tail; refusing it would be for good: a 503.
    throw new UpstreamUnavailableError('cannot tell yet whether this offset is in the stream (the session is not read up to date)', UNSETTLED_RETRY_AFTER_SECONDS);
  }
  else if (!feed.ended && pos.status > Math.max(Date.now(), currentStatus(feed)?.version ?? 0) + STATUS_AHEAD_TOLERANCE_MS) {
    throw new BadRequestError('invalid offset: its status part is in the future');
  }
}

/** Reads from `pos`: at most one chunk of events, then at the head the status (if newer than the reader's) or the end record. */
export async function readBatch(deps: AppDeps, entry: FeedEntry, pos: Position, signal: AbortSignal): Promise<Batch> {
  const { feed } = entry;
  // A closed offset too: on a feed just started, the end is not known yet, and a resume from the
  // closed tail the stream gave (a reload, another instance) must not be refused as "not closed".
  await checkedPosition(feed, pos, signal, () => mayBeBehind(deps));
  if (pos.closed) return { messages: [], next: pos, upToDate: true, closed: true, fixed: true };
  const end = chunkEnd(pos.events);
  const messages: Message[] = [];
  let bytes = 0;
  let at = pos.events;
  const full = () => messages.length > 0 && bytes >= CHUNK_MAX_BYTES;
  // Below the buffer: the hub's history path (shared upstream calls, kept when it joins the buffer).
  while (at < feed.baseIndex && at < end && !full()) {
    let page: UpstreamEvent[];
    try {
      page = await readHistory(deps, entry, at, Math.min(feed.baseIndex, end), signal);
    } catch (err) {
      // A later page that brought none of its events (asked again already): the chunk stops short with what it
      // holds, not cacheable, as a capped page makes it; with nothing yet, the caller gets the 503.
      if (messages.length > 0 && err instanceof UpstreamUnavailableError) break;
      throw err;
    }
    for (const e of page) {
      if (at >= end || full()) break;
      // As the buffer's records are: the upstream's own text where it has one (never its data parsed and re-serialised).
      const m = frameDataParts(eventFrame(at, e));
      messages.push(m);
      bytes += messageBytes(m);
      at++;
    }
    deps.stats.replayFromUpstream++;
  }
  // From the buffer, synchronously: no event can arrive between this and the head check below.
  if (at >= feed.baseIndex) {
    while (at < feed.nextIndex && at < end && !full()) {
      const frames = feed.heldFrames(at, CHUNK_MAX_BYTES) ?? [];
      for (const f of frames) {
        if (at >= end || full()) break;
        const m = frameDataParts(f);
        messages.push(m);
        bytes += messageBytes(m);
        at++;
      }
      if (frames.length === 0) break;
    }
  }
  // A chunk that stopped at its bound holds exactly the same events for every reader: fixed. One that stopped
  // before it (the history read gave less) may hold more next time: not kept by any cache.
  const bounded = at >= end || full();
  if (at < feed.nextIndex || (bounded && feed.ended)) {
    if (messages.length === 0) throw new UpstreamUnavailableError('history not available', HISTORY_RETRY_AFTER_SECONDS);
    return { messages, next: { events: at, status: pos.status, closed: false }, upToDate: false, closed: false, fixed: bounded, ...(bounded ? {} : { partial: true }) };
  }
  if (feed.ended) {
    messages.push(recordMessage('end', frameData(feed.endFrame!)));
    return { messages, next: { events: at, closed: true }, upToDate: true, closed: true, fixed: true };
  }
  const status = currentStatus(feed);
  const statusNew = status !== null && status.version > pos.status;
  // At the head of a feed that may be behind the upstream: said, for the caller to judge by its mode.
  const behind = bounded || headIsTail(feed) ? {} : { behind: true };
  // The status is not added to a bounded chunk (that would make it differ between readers): the next read gets it.
  if (bounded || !statusNew) return { messages, next: { events: at, status: pos.status, closed: false }, upToDate: !statusNew, closed: false, fixed: bounded, ...behind };
  messages.push(status.message);
  return { messages, next: { events: at, status: status.version, closed: false }, upToDate: true, closed: false, fixed: false, ...behind };
}

/**
 * A catch-up answer: from `first` (one chunk) on, chunk after chunk, up to the tail (Stream-Up-To-Date) or the end
 * record, within CATCH_UP_MAX_BYTES. A later chunk whose history cannot be read ends the answer early (not up to
 * date), as a chunk's bound does; the reader asks again from there.
 */
export async function readToTail(deps: AppDeps, entry: FeedEntry, first: Batch, signal: AbortSignal): Promise<Batch> {
  const messages = [...first.messages];
  let bytes = messages.reduce((n, m) => n + messageBytes(m), 0);
  let batch = first;
  while (!batch.upToDate && !batch.closed && !batch.partial && bytes < CATCH_UP_MAX_BYTES) {
    let next: Batch;
    try {
      next = await readBatch(deps, entry, batch.next, signal);
    } catch (err) {
      if (signal.aborted || !(err instanceof UpstreamUnavailableError)) throw err;
      // Cut short: what it holds is right, but the same request may get more next time.
      return { ...batch, messages, fixed: false, partial: true };
    }
    if (next.messages.length === 0 && !next.closed) return { ...batch, messages, fixed: false, partial: true };
    for (const m of next.messages) bytes += messageBytes(m);
    messages.push(...next.messages);
    batch = next;
  }
  // Fixed when its last chunk is (every chunk before it stopped at its bound); partial when that one is.
  return { ...batch, messages };
}
