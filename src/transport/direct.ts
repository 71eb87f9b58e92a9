/**
 * Cluster mode while Redis refuses writes (maxmemory reached, `OOM`): no
 * leader can record anything, so rather than freeze its sessions each
 * instance serves its own feeds from the upstream directly (the upstream is
 * the log of record), with a status saying why, and goes back to the shared
 * log as soon as the log is written again. One error line per outage.
 */
import type { Logger } from 'pino';
import type { Feed } from '../hub/feed.ts';
import { Poller } from '../upstream/poller.ts';
import type { LoopSink } from '../upstream/sink.ts';
import type { LoopSettings } from './memory.ts';

/** Shown as `upstream_error` on a session served around the full store. */
export const STORE_FULL_REASON = 'cluster store (Redis) refuses writes (out of memory): served from the upstream directly';
/** After a write refused for want of memory, how long an instance serves directly before it tries to lead again (ms). */
export const STORE_FULL_RETRY_MS = 5000;

/** The abort reason of a direct loop that stops because the shared log is written again. */
export const LOG_WRITTEN = 'log written again';

/** The feed as a loop's sink, its status flagged while the loop runs around the store (the end is passed as is). */
function flaggedSink(feed: Feed): LoopSink {
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
    publish: (u) => feed.publish(u.end ? u : { ...u, upstreamError: u.upstreamError ?? STORE_FULL_REASON }),
    rebase: (index) => feed.rebase(index),
  };
}

/** Counts the sessions served around the store, and says so once per outage. */
export class StoreRefusals {
  private serving = 0;
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log;
  }

  /** Runs a direct loop for `feed` until `signal` aborts (the log is written again, or the supply stopped). */
  serveDirectly(settings: LoopSettings, feed: Feed, signal: AbortSignal): Promise<void> {
    if (this.serving++ === 0) {
      this.log.error(
        { session: feed.sessionId },
        'redis refuses writes (out of memory: maxmemory reached): sessions are served from the upstream directly until it accepts them again; raise maxmemory, or lower REDIS_LOG_MAX_ENTRIES or REDIS_RETENTION_SECONDS',
      );
    }
    const poller = new Poller({ ...settings, sink: flaggedSink(feed), resumed: true }, signal);
    return poller.run().finally(() => {
      if (--this.serving === 0 && signal.reason === LOG_WRITTEN) this.log.info('redis accepts writes again: sessions are served through the shared log');
    });
  }
}
