/**
 * History older than a feed's buffer, as the hub reads it again for readers
 * that resume far back, shared between them. A reader whose start falls in a
 * page being read, or read a moment ago, takes its events from that page
 * instead of asking the upstream again; the readers of one page then go on
 * from the same next index, so they share the pages after it too. A page that
 * several readers shared is kept within a byte budget for a short while, for
 * the ones a step behind (a lone reader's is not), and at most a few are read
 * from the upstream at once (the rest wait their turn, sessions taking turns,
 * one session holding at most half of them), so a storm of reconnects far back
 * costs the upstream a bounded rate and does not hold other sessions back. Until 6 Dec 2026 each
 * reader read its own pages: 300 reconnects at random points of a 3,000-event
 * session made 2,130 upstream calls in 8 s, and an unrelated session's loop
 * timed out meanwhile (helper audit). A failed read is held for the feed a
 * moment (a 429's Retry-After when it said longer): its readers get that failure
 * meanwhile without asking again. Until 7 Dec 2026 each reader's retry was an
 * upstream call: 92 in 7 s under a 429 that said 30 s (audit).
 */
import { LRUCache } from 'lru-cache';
import { RAW_EVENT_JSON, type UpstreamEvent } from '../upstream/types.ts';
import type { FailureOutcome } from '../upstream/client.ts';
import { DEFAULT_BACKOFF } from '../upstream/backoff.ts';

/**
 * Bytes of history pages kept for the readers a step behind, all feeds together, counted by their events' text
 * (what they hold beyond it, the parsed events and the reads their text is cut from, is not counted).
 */
export const HISTORY_PAGES_MAX_BYTES = 16 * 1024 * 1024;
/** How long a page read is kept for them (ms). */
export const HISTORY_PAGE_TTL_MS = 30_000;
/** Pages read from the transport at once; more wait their turn. */
export const HISTORY_READS_MAX = 8;
/** Of them, pages of one session at once (its feeds together): a session whose upstream is slow holds at most these, never every turn. */
export const HISTORY_READS_PER_SESSION = 4;

/** After a failed page read, how long the feed's next reads get that failure instead of a call (ms), unless a 429 said longer. */
export const HISTORY_FAILURE_HOLD_MS = 1000;
/** The longest a 429's Retry-After holds them, as the loop caps it (`backoffDelayMs`): an upstream that said a day is asked again sooner. */
const HISTORY_FAILURE_HOLD_MAX_MS = 10 * DEFAULT_BACKOFF.maxMs;

/** What a page read gives: its events from its start (none: nothing there), or why not. */
export type PageResult = UpstreamEvent[] | FailureOutcome;

/**
 * A feed's history reads failing, as its readers are told: since when they have failed this way (the first of a run
 * of failures of one kind: a 404 after a 502 starts its own), the latest failure of the run, and when the upstream is
 * asked again (ms since the epoch).
 */
export interface HistoryFailing {
  sinceMs: number;
  lastMs: number;
  retryAtMs: number;
}

interface HeldFailure extends HistoryFailing {
  /** What its readers are told: the latest failure, or the 429 while the wait it asked for is in force. */
  result: FailureOutcome;
  /** The kind of the run of failures `sinceMs`..`lastMs` ('answered': a run ended by an answer, a 429's wait kept). */
  run: FailureOutcome['kind'] | 'answered';
  /** When the latest failure's own hold ends: a run's gaps are measured from it, never from a 429's longer wait. */
  ownUntilMs: number;
  /** A 429's wait in force (a later failure, or an answer to a call sent before, does not end it). */
  limited?: { result: FailureOutcome; untilMs: number };
}

/** How long a run of failures is remembered after its last one (ms): its `sinceMs` outlives the hold, for readers that judge how long it lasted. */
const FAILURE_MEMORY_MS = 60_000;
/**
 * A failure this long after the previous one's hold ended starts a run of its own (ms): readers told to retry in a
 * second come back well within it, and two one-off 404s a minute apart are not a 404 that lasted.
 */
export const RUN_GAP_MS = 5_000;

/** Reads `[start, end)` of a feed's history (at most that many events, at least one when any exist). */
export type PageReader = (start: number, end: number) => Promise<PageResult>;

interface Pending {
  readonly start: number;
  readonly end: number;
  result: Promise<PageResult>;
  /**
   * Set when it failed, or when its turn came during a hold (then no call was made): the hold its waiters are told of
   * (as the LRU may have let it go by then).
   */
  failing?: HistoryFailing;
  /** The signals of the readers waiting for it (checked when its turn comes: no listener per reader). */
  readonly readers: AbortSignal[];
}

/** Readers of `page` still there: one that no other reader shared is not kept; one nobody waits for is not read. */
function stillWaiting(page: Pending): number {
  let n = 0;
  for (const s of page.readers) if (!s.aborted) n++;
  return n;
}

/** A page's size for the budget: its events' own text, or their JSON where they have none. */
function pageBytes(events: readonly UpstreamEvent[]): number {
  let n = 0;
  for (const e of events) {
    const text = e[RAW_EVENT_JSON];
    if (text === undefined) n += JSON.stringify(e).length;
    else for (const part of text) n += part.length;
  }
  return Math.max(1, n);
}

/** The history pages of every feed of a hub. */
export class HistoryPages {
  private readonly pageSize: number;
  private readonly maxReads: number;
  private readonly kept: LRUCache<string, { start: number; events: UpstreamEvent[] }>;
  /** Per feed, the keys of its kept pages (kept in step with `kept` by its dispose). */
  private readonly keptKeys = new Map<string, Set<string>>();
  private readonly pending = new Map<string, Pending[]>();
  private readonly maxPerShare: number;
  private running = 0;
  private readonly runningByShare = new Map<string, number>();
  /** Reads waiting their turn, per share (session); a share served goes to the back (insertion order is the round). */
  private readonly waiting = new Map<string, Array<() => void>>();
  /** Per feed, its reads' latest run of failures (cleared by a read that brings an answer, an empty page too). Per feed, not per session: under AUTH=upstream each feed reads with its own callers' keys. */
  private readonly failures = new LRUCache<string, HeldFailure>({ max: 10_000, ttl: FAILURE_MEMORY_MS, ttlAutopurge: true });

  constructor(pageSize: number, maxBytes = HISTORY_PAGES_MAX_BYTES, ttlMs = HISTORY_PAGE_TTL_MS, maxReads = HISTORY_READS_MAX, maxPerShare = HISTORY_READS_PER_SESSION) {
    this.pageSize = pageSize;
    this.maxReads = maxReads;
    this.maxPerShare = maxPerShare;
    this.kept = new LRUCache({
      maxSize: maxBytes,
      ttl: ttlMs,
      // Gone when their time is up, not when next looked at (a quiet process would hold them for good).
      ttlAutopurge: true,
      sizeCalculation: (page) => pageBytes(page.events),
      dispose: (_page, key) => {
        const feedKey = key.slice(0, key.lastIndexOf('@'));
        const keys = this.keptKeys.get(feedKey);
        keys?.delete(key);
        if (keys?.size === 0) this.keptKeys.delete(feedKey);
      },
    });
  }

  /**
   * Events of feed `feedKey` from `from` on (fewer than `to - from` when a page ends first), with the index the
   * returned page starts at (`from` or before it: the caller may keep the whole page): from a page kept or being
   * read that holds `from`, else from a page read now from `from`, at most a page size long and not past `to`.
   * `shareKey`: the feeds whose reads together hold at most `maxPerShare` turns (a session's, both `include_events`
   * feeds); the feed's own key when not given.
   */
  async read(feedKey: string, from: number, to: number, reader: PageReader, signal: AbortSignal, shareKey = feedKey): Promise<{ start: number; result: PageResult; failing?: HistoryFailing }> {
    // A page too short to hold `from` sends its waiters back here, where the first of them starts the next page and
    // the others join it; a page is waited for once.
    const waited = new Set<Pending>();
    for (;;) {
      // A reader that left starts no page (a page read for nobody) and joins none.
      if (signal.aborted) return { start: from, result: { kind: 'aborted' } };
      const kept = this.keptHolding(feedKey, from);
      if (kept !== null) return kept;
      const held = this.failures.get(feedKey);
      if (held !== undefined && Date.now() < held.retryAtMs) return { start: from, result: held.result, failing: held };
      const p = (this.pending.get(feedKey) ?? []).find((q) => q.start <= from && q.end > from && !waited.has(q));
      if (p === undefined) break;
      waited.add(p);
      p.readers.push(signal);
      const result = await p.result;
      // Not read, its readers having left before its turn (this one came as it resolved): read on, unless this one left too.
      if (!Array.isArray(result) && result.kind === 'aborted' && !signal.aborted) continue;
      // A failed page fails its waiters too (held: see the class), rather than one more call at once.
      if (!Array.isArray(result)) return { start: p.start, result, ...(p.failing ? { failing: p.failing } : {}) };
      if (p.start + result.length > from) return { start: p.start, result };
    }
    const end = Math.min(to, from + this.pageSize);
    const page: Pending = { start: from, end, result: Promise.resolve([]), readers: [signal] };
    page.result = this.inTurn(shareKey, async () => {
      if (stillWaiting(page) === 0) return { kind: 'aborted' };
      // A hold that began while it waited its turn (another read got a 429): no call either (a cluster audit, 7 Dec
      // 2026: 44 page calls in the half second after a 429 that asked for 20 s, from other readers' page chains).
      const held = this.failures.get(feedKey);
      if (held !== undefined && Date.now() < held.retryAtMs) {
        page.failing = held;
        return held.result;
      }
      const sentAtMs = Date.now();
      const result = await reader(from, end);
      // Noted before the next read waiting its turn is let go.
      page.failing = this.noteOutcome(feedKey, result, sentAtMs);
      return result;
    });
    const list = this.pending.get(feedKey) ?? [];
    list.push(page);
    this.pending.set(feedKey, list);
    try {
      const result = await page.result;
      if (page.failing !== undefined) return { start: from, result, failing: page.failing };
      // Kept only where readers came together (a storm): a lone reader's pages are read again by the next one, as
      // before, and memory beyond the feeds' own budgets stays for the case that needs it.
      if (Array.isArray(result) && result.length > 0 && stillWaiting(page) > 1) {
        const key = `${feedKey}@${from}`;
        this.kept.set(key, { start: from, events: result });
        if (this.kept.has(key)) {
          const keys = this.keptKeys.get(feedKey) ?? new Set<string>();
          keys.add(key);
          this.keptKeys.set(feedKey, keys);
        }
      }
      return { start: from, result };
    } finally {
      const at = list.indexOf(page);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0 && this.pending.get(feedKey) === list) this.pending.delete(feedKey);
    }
  }

  /**
   * Holds a failed read's outcome for the feed (the first failure of a run of one kind gives its `sinceMs`); an answer
   * ends the run. `sentAtMs`: when the read's call went out.
   */
  private noteOutcome(feedKey: string, result: PageResult, sentAtMs: number): HistoryFailing | undefined {
    const now = Date.now();
    const before = this.failures.get(feedKey);
    const limitedNow = before?.limited !== undefined && before.limited.untilMs > now ? before.limited : undefined;
    // An answer, even an empty page, ends the run of failures (it proves the session there: two one-off 404s are not
    // a 404 that lasted). A 429's wait in force stays when the answer's call went out before the latest failure came
    // back (reads run side by side): it says nothing of the wait the upstream asked for since (a cluster re-audit and
    // two reviews, 7 Dec 2026: such answers, and a 502 among them, ended a 20 s hold at once).
    if (Array.isArray(result)) {
      if (limitedNow !== undefined && before !== undefined && sentAtMs <= before.lastMs) {
        const held: HeldFailure = { result: limitedNow.result, run: 'answered', sinceMs: now, lastMs: now, retryAtMs: limitedNow.untilMs, ownUntilMs: now, limited: limitedNow };
        this.failures.set(feedKey, held, { ttl: limitedNow.untilMs - now + FAILURE_MEMORY_MS });
      } else this.failures.delete(feedKey);
      return undefined;
    }
    // A read nobody waited for says nothing of the upstream.
    if (result.kind === 'aborted') return undefined;
    const holdMs = result.kind === 'rate-limited' ? Math.min(HISTORY_FAILURE_HOLD_MAX_MS, Math.max(HISTORY_FAILURE_HOLD_MS, result.retryAfterMs ?? 0)) : HISTORY_FAILURE_HOLD_MS;
    const ownUntilMs = now + holdMs;
    const limited = result.kind === 'rate-limited' ? { result, untilMs: Math.max(ownUntilMs, limitedNow?.untilMs ?? 0) } : limitedNow;
    const sameRun = before !== undefined && before.run === result.kind && now - before.ownUntilMs <= RUN_GAP_MS;
    const retryAtMs = Math.max(ownUntilMs, limited?.untilMs ?? 0);
    const held: HeldFailure = {
      result: limited !== undefined ? limited.result : result,
      run: result.kind,
      sinceMs: sameRun ? before.sinceMs : now,
      lastMs: now,
      retryAtMs,
      ownUntilMs,
      ...(limited !== undefined ? { limited } : {}),
    };
    this.failures.set(feedKey, held, { ttl: retryAtMs - now + FAILURE_MEMORY_MS });
    return held;
  }

  /** The feed's latest run of failures, if one is remembered (no answer since). */
  failureOf(feedKey: string): (HistoryFailing & { result: FailureOutcome }) | undefined {
    return this.failures.peek(feedKey);
  }

  /** Pages kept now (tests, metrics). */
  get keptPages(): number {
    return this.kept.size;
  }

  private keptHolding(feedKey: string, from: number): { start: number; result: PageResult } | null {
    for (const key of this.keptKeys.get(feedKey) ?? []) {
      const page = this.kept.get(key);
      if (page !== undefined && page.start <= from && page.start + page.events.length > from) return { start: page.start, result: page.events };
    }
    return null;
  }

  /**
   * Runs `read` once fewer than `maxReads` run and fewer than `maxPerShare` of its share; waiting reads go in the
   * order asked within a share, shares taking turns.
   */
  private async inTurn(shareKey: string, read: () => Promise<PageResult>): Promise<PageResult> {
    if (this.running < this.maxReads && (this.runningByShare.get(shareKey) ?? 0) < this.maxPerShare) this.take(shareKey);
    else {
      // The place is taken for it before it is woken (a place freed is not counted free in between).
      await new Promise<void>((resolve) => {
        const queue = this.waiting.get(shareKey);
        if (queue) queue.push(resolve);
        else this.waiting.set(shareKey, [resolve]);
      });
    }
    try {
      return await read();
    } finally {
      this.running--;
      const mine = this.runningByShare.get(shareKey)! - 1;
      if (mine === 0) this.runningByShare.delete(shareKey);
      else this.runningByShare.set(shareKey, mine);
      this.nextTurns();
    }
  }

  private take(shareKey: string): void {
    this.running++;
    this.runningByShare.set(shareKey, (this.runningByShare.get(shareKey) ?? 0) + 1);
  }

  /** Hands free places to waiting reads, one share after another. */
  private nextTurns(): void {
    for (let served = true; served && this.running < this.maxReads; ) {
      served = false;
      for (const [shareKey, queue] of [...this.waiting]) {
        if (this.running >= this.maxReads) return;
        if ((this.runningByShare.get(shareKey) ?? 0) >= this.maxPerShare) continue;
        const wake = queue.shift()!;
        this.waiting.delete(shareKey);
        if (queue.length > 0) this.waiting.set(shareKey, queue);
        this.take(shareKey);
        wake();
        served = true;
      }
    }
  }
}
