/**
 * One session list (one credential scope and filter): the summaries the last
 * poll found with the live status and metrics of sessions whose loop runs
 * merged in, a version that moves with every visible change, and a bounded
 * log of the latest changes so a reconnect gets only what it missed. Each
 * change is encoded once, as the frame every viewer of the list receives.
 */
import { randomBytes } from 'node:crypto';
import { encodeFrame } from '../sse.ts';
import type { SessionListing, SessionSummary } from '../upstream/list-client.ts';
import { TERMINAL_STATUSES, type SessionMetrics } from '../upstream/types.ts';

/** A checked list filter (built by the HTTP layer from the query). */
export interface ListFilter {
  /** The filter as sent upstream, in canonical order (page and size only when the viewer named one page). */
  readonly params: URLSearchParams;
  /** The same as a string: the filter's share of a poll's key. */
  readonly key: string;
  /** The key as logs show it: a token a viewer put in a filter (`search=eyJ…`) replaced (an operator audit). */
  readonly logKey: string;
  /** The statuses asked for, when the filter names some: a live status outside them hides a session. */
  readonly statuses: ReadonlySet<string> | undefined;
}

/** What a running loop knows of a session now. */
export interface LiveStatus {
  status: string;
  metrics: SessionMetrics;
  /** When the session ended, once the loop knows (null or absent before). */
  finished_at?: string | null;
}

/** Receives a list's changes as shared frames. */
export interface ListListener {
  /** One upsert or remove of session `id`. */
  onChange(id: string, frame: Buffer): void;
  /** The upstream list failed or recovered: an `event: status` frame. */
  onTrouble(frame: Buffer): void;
  /** The first listing arrived after the viewer joined: its snapshot, built for what it may see. */
  onListed(snapshot: (allow: ReadonlySet<string> | undefined) => Buffer): void;
  /** The upstream refuses the key this list is read with: the viewer's stream ends with `event: error` `{"error": code}`. */
  onRefused(code: string): void;
}

/** The change-log id of `event: total`: no session's (ids are never empty), and never in a viewer's allowed set (see `admits`). */
const TOTAL_ID = '';

/** Whether a viewer limited to `allow` (undefined: every listed session) gets the change logged under `id`. */
export function admits(allow: ReadonlySet<string> | undefined, id: string): boolean {
  // A limited viewer's count is its items': the operator's total is never its business.
  return allow === undefined || (id !== TOTAL_ID && allow.has(id));
}

/** One entry of the change log: the frame that carried the change. */
interface Change {
  version: number;
  id: string;
  frame: Buffer;
}

/** A resume point: the `id` of a list frame (`<epoch>.<version>`). */
export interface ListCursor {
  epoch: string;
  version: number;
}

/** `<epoch>.<version>`: an epoch of hex digits, a version of decimal digits. */
const CURSOR = /^([0-9a-f]{1,32})\.(\d{1,15})$/;

/** Parses a list frame id; null when it is not one (the caller answers 400). */
export function parseListCursor(raw: string): ListCursor | null {
  const m = CURSOR.exec(raw);
  return m ? { epoch: m[1]!, version: Number(m[2]) } : null;
}

/** `listed` with the `kept` sessions of `previous` back in it, each before the listed session it preceded there. */
function withKept(listed: Map<string, SessionSummary>, previous: Map<string, SessionSummary>, kept: ReadonlySet<string>): Map<string, SessionSummary> {
  const before = new Map<string | undefined, string[]>();
  let nextListed: string | undefined;
  for (const id of [...previous.keys()].reverse()) {
    if (kept.has(id)) before.set(nextListed, [id, ...(before.get(nextListed) ?? [])]);
    else if (listed.has(id)) nextListed = id;
  }
  const out = new Map<string, SessionSummary>();
  for (const [id, summary] of listed) {
    for (const k of before.get(id) ?? []) out.set(k, previous.get(k)!);
    out.set(id, summary);
  }
  for (const k of before.get(undefined) ?? []) out.set(k, previous.get(k)!);
  return out;
}

/** One list's state and fan-out point. */
export class ListFeed {
  readonly key: string;
  readonly filter: ListFilter;
  /** Names this incarnation of the list: versions of an earlier one (before a restart or an idle drop) mean nothing here. */
  readonly epoch = randomBytes(6).toString('hex');
  readonly listeners = new Set<ListListener>();
  /** Resolved once the first poll answered (well or not). */
  readonly firstPoll: Promise<void>;
  /** True once a poll brought a listing. */
  listed = false;
  private settleFirst!: () => void;
  private versionNow = 0;
  private upstreamTotal = 0;
  /** The last listing's summaries by id, in the upstream's order. */
  private summaries = new Map<string, SessionSummary>();
  /**
   * Sessions a read of several pages did not find, kept from the listing before for that one poll: pages that
   * shifted under the read (a session deleted on a page already read pulls the next one onto it) can miss one that
   * exists, with the count unchanged (a session created meanwhile) or again after the one read the count's move
   * brings. One still missing at the next read goes. Until 6 Dec 2026 such a session was removed for a poll (audit).
   */
  private missingOnce = new Set<string>();
  /** The status each listed session's running loop showed at the last listing (none: no loop then). */
  private liveAtListing = new Map<string, string>();
  /** What viewers see of each visible session: its merged summary's JSON. */
  private readonly shown = new Map<string, string>();
  private readonly log: Change[] = [];
  private readonly maxLogEntries: number;
  private troubleText: string | null = null;
  /** Set while the first listing is taken: its sessions reach viewers as one snapshot, not as changes. */
  private quiet = false;
  /** The total viewers of every listed session were last told (in a snapshot or an `event: total`). */
  private totalSent = 0;

  constructor(key: string, filter: ListFilter, maxLogEntries: number) {
    this.key = key;
    this.filter = filter;
    this.maxLogEntries = maxLogEntries;
    this.firstPoll = new Promise((resolve) => (this.settleFirst = resolve));
  }

  get version(): number {
    return this.versionNow;
  }
  /** The upstream's error while the list cannot be read, else null. */
  get trouble(): string | null {
    return this.troubleText;
  }
  /** Session ids of the last listing. */
  has(id: string): boolean {
    return this.summaries.has(id);
  }
  /** The frame id of the list as it is now. */
  get cursor(): string {
    return `${this.epoch}.${this.versionNow}`;
  }

  /**
   * Takes a poll's listing: new and changed sessions are upserted, vanished ones removed. Returns the sessions
   * whose listed status is one their running loop does not show, where the listed status moved since the last
   * listing, or the loop's did (paused, then resumed upstream between two polls: listed running both times): the
   * loop has not heard of it yet (a session paused upstream answers its long-poll nothing), and should ask. A
   * listing that merely lags the loop asks once, not at every poll.
   */
  applyListing(listing: SessionListing, live: (id: string) => LiveStatus | undefined): string[] {
    const first = !this.listed;
    // Recovered, said before what the listing changed (a dashboard's banner goes before the rows it held back).
    this.setTrouble(null);
    const previous = this.summaries;
    const listed = new Map(listing.items.map((s) => [s.id, s]));
    const behind: string[] = [];
    const kept = new Set<string>();
    for (const id of previous.keys()) {
      if (listed.has(id)) continue;
      const now = live(id);
      // Gone from a list filtered by status while its loop still shows a status the filter takes: its status
      // probably left the filter (an end the loop has not heard, its long-poll answering nothing): the loop asks.
      if (!first && now !== undefined && this.filter.statuses?.has(now.status) === true) behind.push(id);
      if (listing.calls > 1 && !this.missingOnce.has(id)) kept.add(id);
    }
    this.summaries = kept.size === 0 ? listed : withKept(listed, previous, kept);
    this.missingOnce = kept;
    this.upstreamTotal = listing.total;
    this.quiet = first;
    const liveBefore = this.liveAtListing;
    this.liveAtListing = new Map();
    for (const id of previous.keys()) if (!this.summaries.has(id)) this.update(id, live(id));
    for (const [id, summary] of this.summaries) {
      const now = live(id);
      // Not on a first listing, which may just lag behind the loop: a status that moved since, or a session new to it.
      const moved = summary.status !== previous.get(id)?.status || (now !== undefined && now.status !== liveBefore.get(id));
      if (!first && now !== undefined && summary.status !== now.status && moved) behind.push(id);
      if (now !== undefined) this.liveAtListing.set(id, now.status);
      this.update(id, now);
    }
    this.quiet = false;
    this.listed = true;
    if (first) {
      this.totalSent = this.total();
      for (const l of this.listeners) l.onListed((allow) => this.snapshotFrame(allow));
    } else this.noteTotal();
    this.settleFirst();
    return behind;
  }

  /** A poll failed: viewers are told once, and again when it recovers. */
  failed(reason: string): void {
    this.setTrouble(reason);
    this.settleFirst();
  }

  /** The upstream refused the list's key after it had been read with it: every viewer is turned away. */
  refused(code: string): void {
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const l of listeners) l.onRefused(code);
  }

  /** A loop's status or metrics of session `id` changed (or its loop stopped: undefined). */
  applyLive(id: string, live: LiveStatus | undefined): void {
    if (!this.summaries.has(id)) return;
    this.update(id, live);
    this.noteTotal();
  }

  /** The `event: snapshot` frame, of the sessions `allow` admits (all when undefined). */
  snapshotFrame(allow: ReadonlySet<string> | undefined): Buffer {
    const items: string[] = [];
    for (const id of this.summaries.keys()) {
      const json = this.shown.get(id);
      if (json !== undefined && (allow === undefined || allow.has(id))) items.push(json);
    }
    // A viewer limited to some sessions learns how many of them are listed, not how many the operator has.
    const total = allow === undefined ? this.total() : items.length;
    return encodeFrame({ event: 'snapshot', id: this.cursor, data: `{"items":[${items.join(',')}],"total":${total}}` });
  }

  /** The upstream's count of the filter's sessions, less those a live status took out of it, never below those shown. */
  private total(): number {
    const hidden = this.summaries.size - this.shown.size;
    return Math.max(this.shown.size, this.upstreamTotal - hidden);
  }

  /**
   * An `event: total` when the count moved since the last one sent: with a page (`size`), or past
   * SESSION_LIST_MAX_SESSIONS, upserts and removes alone cannot tell it. Logged as a change of its own (id ''),
   * which a viewer limited to some sessions never gets: it counts its items itself.
   */
  private noteTotal(): void {
    const total = this.total();
    if (total === this.totalSent) return;
    this.totalSent = total;
    this.record(TOTAL_ID, 'total', `{"total":${total}}`);
  }

  /** The `event: status` frame of the list's upstream state. */
  troubleFrame(): Buffer {
    return encodeFrame({ event: 'status', data: JSON.stringify({ upstream_error: this.troubleText }) });
  }

  /**
   * The frames a viewer at `cursor` missed, each session's latest change
   * once, in version order; null when a snapshot must be sent instead (another
   * epoch, a version the log no longer reaches, or more changes than the
   * list has sessions).
   */
  changesSince(cursor: ListCursor, allow: ReadonlySet<string> | undefined): Buffer[] | null {
    if (cursor.epoch !== this.epoch || cursor.version > this.versionNow) return null;
    if (cursor.version === this.versionNow) return [];
    const oldest = this.log[0];
    if (oldest === undefined || oldest.version > cursor.version + 1) return null;
    const latest = new Map<string, Change>();
    for (let i = this.log.length - 1; i >= 0 && this.log[i]!.version > cursor.version; i--) {
      const change = this.log[i]!;
      if (!latest.has(change.id) && admits(allow, change.id)) latest.set(change.id, change);
    }
    if (latest.size > Math.max(1, this.shown.size)) return null;
    return [...latest.values()].sort((a, b) => a.version - b.version).map((c) => c.frame);
  }

  // Recomputes what viewers see of one session; a visible change gets a version and a frame.
  private update(id: string, live: LiveStatus | undefined): void {
    const summary = this.summaries.get(id);
    // A terminal status is final wherever it comes from: a loop may not have heard of the end the list already shows.
    const status = live === undefined || (summary !== undefined && TERMINAL_STATUSES.has(summary.status)) ? summary?.status : live.status;
    // A loop that has only heard `/status` so far knows no metrics yet: none is better than an empty object.
    const metrics = live !== undefined && Object.keys(live.metrics).length > 0 ? { metrics: live.metrics } : {};
    // An end the loop heard before the list poll shows it comes with its finished_at, as a session stream's does: not
    // a terminal status beside `finished_at: null` until the next poll (an audit, 7 Dec 2026).
    // The loop's own status terminal, as a session stream shows finished_at (a review: with the list's terminal status
    // and the loop's still running, an unconfirmed one from a changes answer came through).
    const finished = live?.finished_at && TERMINAL_STATUSES.has(live.status) && summary?.finished_at == null ? { finished_at: live.finished_at } : {};
    const merged = summary === undefined ? undefined : live === undefined ? summary : { ...summary, status: status!, ...metrics, ...finished };
    const visible = merged !== undefined && (this.filter.statuses === undefined || this.filter.statuses.has(merged.status));
    const before = this.shown.get(id);
    if (visible) {
      const json = JSON.stringify(merged);
      if (json === before) return;
      this.shown.set(id, json);
      this.record(id, 'upsert', json);
    } else if (before !== undefined) {
      this.shown.delete(id);
      this.record(id, 'remove', JSON.stringify({ id }));
    }
  }

  private record(id: string, event: 'upsert' | 'remove' | 'total', data: string): void {
    this.versionNow++;
    const frame = encodeFrame({ event, id: this.cursor, data });
    this.log.push({ version: this.versionNow, id, frame });
    // Past the bound the oldest changes go: a viewer that far behind gets a snapshot instead.
    if (this.log.length > this.maxLogEntries) this.log.splice(0, this.log.length - this.maxLogEntries);
    if (!this.quiet) for (const l of this.listeners) l.onChange(id, frame);
  }

  private setTrouble(reason: string | null): void {
    if (reason === this.troubleText) return;
    this.troubleText = reason;
    const frame = this.troubleFrame();
    for (const l of this.listeners) l.onTrouble(frame);
  }
}
