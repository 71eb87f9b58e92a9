/**
 * Screenshot-sized events are framed from the upstream's own text without a
 * copy (a SplitFrame: head, the text as a view on the body, blank line). Every
 * reader of those frames gets the events exactly as the upstream sent them:
 * live over HTTP/1.1 (node:http's strict parser) and HTTP/2, replayed from the
 * buffer, fetched again from the upstream past the byte budget, tagged in a
 * multiplexed stream, through the drop-in `changes` endpoint and as a Durable
 * Stream. The test also checks the frames held are split ones, so the path
 * under test is the one taken.
 */
import { connect, type ClientHttp2Session } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { SplitFrame } from '../../src/hub/frames.ts';
import { eventually, range, record, startBridge, strictGet, type Bridge } from '../helpers/harness.ts';
import { h2request } from '../helpers/h2.ts';
import { parseSse } from '../helpers/multi.ts';
import { readDurable } from '../helpers/durable.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';

/** Events of the session, each with ~100 KB of details. */
const EVENTS = 8;
const DETAIL_BYTES = 100_000;
/** A budget that holds the last three or four of them: older ones come from the upstream again. */
const BUDGET_BYTES = 400_000;

let bridge: Bridge | undefined;
let h2: ClientHttp2Session | undefined;
afterEach(async () => {
  h2?.destroy();
  await bridge?.close();
  bridge = h2 = undefined;
});

/** The session events of an SSE body, parsed: `{index, type, data, timestamp}` (and `session` when tagged). */
function eventsIn(text: string): Array<{ index: number; data: unknown; session?: string }> {
  return parseSse(text)
    .filter((f) => f.event === undefined && f.data !== undefined)
    .map((f) => JSON.parse(f.data!) as { index: number; data: unknown; session?: string });
}

describe('screenshot frames framed from the upstream\'s text', () => {
  it('reach every reader exactly as the upstream sent them', async () => {
    const b = (bridge = await startBridge({ ...ONE_ADDRESS_ENV, SESSION_MAX_BYTES: String(BUDGET_BYTES) }));
    b.sim.createSession('shots', { detailBytes: DETAIL_BYTES });
    const url = `${b.url}/sessions/shots/events`;

    // Live: an EventSource, a strict HTTP/1.1 reader and an HTTP/2 reader, all caught up before the events come.
    const live = record(url);
    const strict = strictGet(url);
    h2 = connect(b.url);
    h2.on('error', () => {});
    const overH2 = h2request(h2, '/sessions/shots/events');
    await live.until((x) => x.statuses().length >= 1);
    await eventually(() => b.server.streams.size === 3, 5000, 'three streams open');
    // One at a time, so each answer carries one screenshot: its text is then most of the body, and framed as a view.
    for (let n = 1; n <= EVENTS; n++) {
      b.sim.appendEvents('shots', 1);
      await live.until((x) => x.indices().length === n);
    }

    // The frames held are split ones (the path under test), within the budget.
    const entry = await b.server.hub.acquire('shots', true);
    try {
      const held = entry.feed.heldFrames(0, Number.MAX_SAFE_INTEGER)!;
      expect(held.length).toBeGreaterThan(0);
      expect(held.length).toBeLessThan(EVENTS);
      for (const f of held) expect(f).toBeInstanceOf(SplitFrame);
      // Nor was the body joined into a copy: a screenshot's text lies in the socket reads it came in (64 KB at most each).
      expect(held.some((f) => (f as SplitFrame).text.length > 1)).toBe(true);
      for (const f of held) for (const part of (f as SplitFrame).text) expect(part.buffer.byteLength).toBeLessThanOrEqual(65_536);
    } finally {
      b.server.hub.release(entry);
    }

    b.sim.finish('shots', {});
    await live.ended();
    live.close();
    const upstream = (await (await fetch(`${b.sim.url}/sessions/shots/changes?from_index=0&limit=100&include_details=true`)).json()) as { new_events: Array<{ data: unknown }> };
    const sent = upstream.new_events.map((e) => e.data);
    expect(sent).toHaveLength(EVENTS);
    expect(JSON.stringify(sent[0]).length).toBeGreaterThan(DETAIL_BYTES);

    const expectAll = (got: Array<{ index: number; data: unknown }>, from = 0) => {
      expect(got.map((e) => e.index)).toEqual(range(EVENTS - from, from));
      expect(got.map((e) => e.data)).toEqual(sent.slice(from));
    };
    expect(live.indices()).toEqual(range(EVENTS));
    expect(live.messages.filter((m) => m.type === 'message').map((m) => m.data.data)).toEqual(sent);
    expectAll(eventsIn(await strict));
    expectAll(eventsIn(await overH2.done(20_000)));

    // Replayed from the buffer (the last events), then from the upstream past the budget (a reader from the start).
    expectAll(eventsIn(await strictGet(url, { 'Last-Event-ID': String(EVENTS - 3) })), EVENTS - 2);
    b.sim.resetStats();
    expectAll(eventsIn(await strictGet(url)));
    expect(b.sim.stats('shots').changes).toBeGreaterThan(0);

    // Tagged in a multiplexed stream: the session's prefix, then the held frame's tail.
    const tagged = eventsIn(await strictGet(`${b.url}/events?session=shots`));
    expectAll(tagged);
    for (const e of tagged) expect(e.session).toBe('shots');

    // The drop-in endpoint decodes the held frames again; a Durable Stream carries each event's JSON.
    const dropIn = (await (await fetch(`${b.url}/sessions/shots/changes?from_index=${EVENTS - 3}&include_details=true`)).json()) as { new_events: Array<{ data: unknown }> };
    expect(dropIn.new_events.map((e) => e.data)).toEqual(sent.slice(EVENTS - 3));
    const durable = await readDurable(`${b.url}/v1/stream/sessions/shots`, { live: false });
    expectAll(durable.items.filter((m) => typeof m.index === 'number'));
  }, 60_000);
});
