/**
 * Cluster mode while Redis cannot carry a session: refusing writes
 * (maxmemory reached, `OOM`), or away (down, or not answering). No
 * leader can record anything, so rather than freeze (or hold back) its
 * sessions each instance serves its own feeds from the upstream directly (the
 * upstream is the log of record), with a status saying why, and goes back to
 * the shared log as soon as a leader writes it again. One error line per
 * outage and cause.
 */
import type { Logger } from 'pino';
import type { Feed } from '../hub/feed.ts';
import { callerClient } from '../upstream/caller-client.ts';
import { Poller, type PollerOptions } from '../upstream/poller.ts';
import type { LoopSink } from '../upstream/sink.ts';
import type { LoopSettings } from './memory.ts';

/** Why a session is served around the store. */
export type Bypass = 'full' | 'unreachable';

/** What is wrong with the store, in the words the bypass reasons begin with. */
export const BYPASS_STORE: Record<Bypass, string> = {
  full: 'cluster store (Redis) refuses writes (out of memory)',
  unreachable: 'cluster store (Redis) unreachable',
};

/** Shown as `upstream_error` on a session served around the store. */
export const BYPASS_REASON: Record<Bypass, string> = {
  full: `${BYPASS_STORE.full}: served from the upstream directly`,
  unreachable: `${BYPASS_STORE.unreachable}: served from the upstream directly`,
};

const BYPASS_LOG: Record<Bypass, string> = {
  full: 'redis refuses writes (out of memory: maxmemory reached): sessions are served from the upstream directly until it accepts them again; raise maxmemory, or lower REDIS_LOG_MAX_ENTRIES or REDIS_RETENTION_SECONDS',
  unreachable: 'redis unreachable, not answering or refusing pollcast: sessions are served from the upstream directly (one loop per instance) until it answers; check REDIS_URL',
};

/** After a write refused for want of memory, how long an instance serves directly before it tries to lead again (ms). */
export const STORE_FULL_RETRY_MS = 5000;
/** How long Redis may be away (down, or silent) before a session it never carried here is served around it (ms); one it carries waits a lease. */
export const STORE_DOWN_WAIT_MS = 2000;
/** The abort reason of a direct loop that stops because the shared log is written again. */
export const LOG_WRITTEN = 'log written again';

/** The feed as a loop's sink, its status flagged while the loop runs around the store (the end is passed as is). */
function flaggedSink(feed: Feed, reason: string): LoopSink {
  return {
    sessionId: feed.sessionId,
    includeEvents: feed.includeEvents,
    get nextIndex() {
      return feed.nextIndex;
    },
    get baseIndex() {
      return feed.baseIndex;
    },
    get snapshot() {
      return feed.snapshot;
    },
    publish: (u) => feed.publish(u.end ? u : { ...u, upstreamError: u.upstreamError ?? reason }),
    rebase: (index) => feed.rebase(index),
  };
}

/** Counts the sessions served around the store, and says so once per outage and cause. */
export class StoreBypasses {
  private readonly serving: Record<Bypass, number> = { full: 0, unreachable: 0 };
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  /** Sessions served around the store now, for that cause. */
  count(why: Bypass): number {
    return this.serving[why];
  }

  /** Runs a direct loop for `feed` until `signal` aborts (the log is written again, or the supply stopped). */
  serve(why: Bypass, settings: LoopSettings, feed: Feed, signal: AbortSignal, contact: Pick<PollerOptions, 'resumed' | 'onFirstContact'>): Promise<void> {
    if (this.serving[why]++ === 0) this.log.error({ session: feed.sessionId }, BYPASS_LOG[why]);
    // On the callers' credentials as the leader's loop is (AUTH=upstream without UPSTREAM_API_KEY: there is no other).
    const poller = new Poller({ ...settings, ...contact, client: callerClient(settings.client, feed.callers), sink: flaggedSink(feed, BYPASS_REASON[why]) }, signal);
    return poller.run().finally(() => {
      const last = --this.serving[why] === 0;
      if (signal.reason !== LOG_WRITTEN) return;
      if (last) this.log.info({ cause: why }, 'redis carries the sessions again: they are served through the shared log');
      // Back on the log, the notice is no longer true, even before its leader writes (a Redis restarted empty holds
      // no status to replace it, and a quiet session's leader may write none for a while).
      if (!feed.ended && feed.upstreamError === BYPASS_REASON[why]) {
        feed.publish({ fromIndex: feed.nextIndex, events: [], snapshot: feed.snapshot, synced: feed.synced, failing: feed.failing, upstreamError: null });
      }
    });
  }
}
