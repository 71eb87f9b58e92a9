/** checkedPosition: how an offset past the tail is judged. */
import { describe, expect, it } from 'vitest';
import { checkedPosition } from '../../src/http/durable-read.ts';
import { createFeed, type Feed } from '../../src/hub/feed.ts';
import { UNKNOWN_SNAPSHOT, type Snapshot } from '../../src/upstream/snapshot.ts';

const running: Snapshot = { ...UNKNOWN_SNAPSHOT, status: 'running', started_at: 's', metrics: { steps: 0 } };
const evs = (n: number) => Array.from({ length: n }, (_, i) => ({ type: 't', data: { i }, timestamp: `ts${i}` }));

function syncedFeed(events: number): Feed {
  const feed = createFeed('s1', true, 0, { maxEvents: 100, maxBytes: 1e6 });
  feed.publish({ fromIndex: 0, events: evs(events), snapshot: running, synced: true, upstreamError: null });
  return feed;
}

describe('checkedPosition, an offset past the tail', () => {
  it('alone (no cluster lag): 400 once read up to date', async () => {
    const feed = syncedFeed(3);
    await expect(checkedPosition(feed, { events: 5, status: 0, closed: false }, new AbortController().signal, () => false)).rejects.toMatchObject({ code: 'bad_request' });
  });

  // CI once got upstream_unavailable here (test/cluster/durable-behind.test.ts, Redis restarted empty): a feed read
  // up to date when the read began turned unsynced during the wait for the tail (a new leader's loop starting).
  it('where this instance may lag its cluster: 503 behind_offset even if the feed turns unsynced during the wait', async () => {
    const feed = syncedFeed(3);
    const check = checkedPosition(feed, { events: 5, status: 0, closed: false }, new AbortController().signal, () => true);
    setTimeout(() => feed.publish({ fromIndex: 3, events: [], snapshot: running, synced: false, upstreamError: null }), 100);
    await expect(check).rejects.toMatchObject({ code: 'behind_offset' });
    expect(feed.synced).toBe(false);
  });
});
