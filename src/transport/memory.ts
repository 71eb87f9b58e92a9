/** The default transport: each feed's loop runs in this process and writes straight into the feed. */
import type { Logger } from 'pino';
import type { Feed } from '../hub/feed.ts';
import type { BackoffPolicy } from '../upstream/backoff.ts';
import type { FailureOutcome, UpstreamClient } from '../upstream/client.ts';
import { fetchPage, PageLimit } from '../upstream/pager.ts';
import { callerClient } from '../upstream/caller-client.ts';
import { Poller, type FirstContact, type PollerState } from '../upstream/poller.ts';
import type { UpstreamEvent } from '../upstream/types.ts';
import type { Supply, Transport } from '../hub/transport.ts';

/** What the loops need. */
export interface LoopSettings {
  client: UpstreamClient;
  log: Logger;
  waitSeconds: number;
  pageSize: number;
  maxBodyBytes: number;
  backoff: BackoffPolicy;
  giveUpMs: number;
  /** A held `/status` younger than this is not asked again on demand (drop-in callers; ms). */
  statusFreshMs: number;
  /** Metrics hooks. */
  onEvents?: (count: number) => void;
  onOversized?: (index: number) => void;
}

/** Events [from, to) read again from upstream with wait 0 (at most one page; at least one event when any exist). */
export async function upstreamHistory(settings: LoopSettings, feed: Feed, from: number, to: number, signal: AbortSignal): Promise<UpstreamEvent[] | FailureOutcome> {
  const limit = new PageLimit(Math.max(1, Math.min(settings.pageSize, to - from)));
  // Read with the loop's credential: without UPSTREAM_API_KEY, a caller's the upstream accepted for this session.
  const r = await fetchPage(callerClient(settings.client, feed.callers), feed.sessionId, { fromIndex: from, includeEvents: feed.includeEvents, waitSeconds: 0 }, limit, signal);
  if (r.kind === 'events') return r.changes.new_events.slice(0, to - from);
  if (r.kind === 'no-change') return [];
  if (r.kind === 'oversized') {
    settings.onOversized?.(r.index);
    return [r.event];
  }
  return r;
}

/** Runs one loop per supplied feed, here. */
export function createMemoryTransport(settings: LoopSettings): Transport {
  // Per feed, until when the upstream asked its loop to wait (a 429's Retry-After; ms since the epoch): kept across
  // the loop's stop, as a cluster keeps it in the log's meta for the next leader.
  const retryAfterUntil = new WeakMap<Feed, number>();
  return {
    supply(feed: Feed, signal: AbortSignal): Supply {
      let resolveContact!: (c: FirstContact) => void;
      const firstContact = new Promise<FirstContact>((resolve) => (resolveContact = resolve));
      let loopState: PollerState = 'polling';
      // A feed kept from a stopped loop that was waiting out a Retry-After: the new loop waits the rest of it before
      // any call, and streams open at once on what the feed shows (until 7 Dec 2026 every new loop called at once:
      // drop-in pollers that outlived IDLE_GRACE_SECONDS between polls made 3 calls every 3 s under a Retry-After of
      // 20 s, an audit found). Not a backoff of the loop's own, nor one after a refusal: a session deleted meanwhile
      // is a 404 at its next open, as before (a review found such opens answered 200 for the give-up time).
      const holdOffMs = (retryAfterUntil.get(feed) ?? 0) - Date.now();
      const poller = new Poller(
        {
          ...settings,
          client: callerClient(settings.client, feed.callers),
          sink: feed,
          seenGoingOn: feed.goingOnSnapshot !== null,
          startAtHead: () => feed.startAtHead,
          onFirstContact: resolveContact,
          onState: (s) => (loopState = s),
          // The upstream's own wait, not the loop's backoff it may be inside of (a review).
          onRetryAfter: (_waitMs, retryAfterMs) => retryAfterUntil.set(feed, Date.now() + retryAfterMs),
          // Its first contact is answered at once (below): a refusal after the wait is one to show and retry.
          ...(holdOffMs > 0 ? { holdOffMs, resumed: true } : {}),
        },
        signal,
      );
      if (holdOffMs > 0) resolveContact({ kind: 'unavailable', reason: feed.upstreamError ?? 'upstream unavailable' });
      // A loop stopped before its first contact resolves it as unavailable, so no opener waits forever.
      const done = poller.run().finally(() => resolveContact({ kind: 'unavailable', reason: 'loop stopped' }));
      return {
        firstContact,
        done,
        get loopState() {
          return loopState;
        },
        get retryAtMs() {
          return poller.retryAtMs;
        },
        refreshStatus: (force) => poller.refreshStatus(force),
      };
    },
    history: (feed, from, to, signal) => upstreamHistory(settings, feed, from, to, signal),
    async close() {},
  };
}
