/**
 * Issue 21: while a session's loop waits in its next long-poll, nothing of the
 * page it answered before is still alive. The event reaches subscribers as its
 * encoded frame (bytes outside the JS heap); the parsed page, with its
 * screenshot-sized strings, must be garbage by then. A loop that held it
 * through the wait (it did: the async loop's frame kept the last answer) makes
 * every busy session's last page survive young-generation collections and wait
 * in the old generation for a full one.
 *
 * The simulator runs in a child process, so its own copy of the event is not in
 * this heap, and the subscriber is a raw HTTP reader that never decodes what it
 * receives into strings.
 */
import { get } from 'node:http';
import { getHeapSnapshot } from 'node:v8';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/harness.ts';
import type { PollcastServer } from '../../src/server.ts';
import { spawnSimulator, startPollcastOn, type RemoteSim } from './remote.ts';

/** An odd size no source file or test string shares: a live string this long (or a little longer) is the page. */
const DETAIL_BYTES = 1_234_567;
/** Room above the details for the page's whole text or the event's JSON (envelope, index, timestamp). */
const ENVELOPE_BYTES = 4096;

interface SnapshotJson {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
}

/** Self sizes of the live strings in this process's heap as long as the page's (the snapshot collects garbage first). */
async function pageSizedStrings(): Promise<number[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of getHeapSnapshot()) chunks.push(chunk as Buffer);
  const snap = JSON.parse(Buffer.concat(chunks).toString('utf8')) as SnapshotJson;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const typeAt = fields.indexOf('type');
  const sizeAt = fields.indexOf('self_size');
  const sizes: number[] = [];
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    if (/string/.test(types[snap.nodes[i + typeAt]!] ?? '')) sizes.push(snap.nodes[i + sizeAt]!);
  }
  return sizes.filter((size) => size >= DETAIL_BYTES && size <= DETAIL_BYTES + ENVELOPE_BYTES);
}

let sim: RemoteSim | undefined;
let server: PollcastServer | undefined;
afterEach(async () => {
  await server?.close();
  await sim?.close();
  server = sim = undefined;
});

describe('a loop waiting in its next long-poll holds nothing of the last page', () => {
  it('keeps no string of a delivered ~1.2 MB event alive while the next long-poll waits', { timeout: 60_000 }, async () => {
    sim = await spawnSimulator();
    await sim.createSession('big', { initialEvents: 0, detailBytes: DETAIL_BYTES });
    server = await startPollcastOn(sim.url, { UPSTREAM_WAIT_SECONDS: '30' });

    // A raw reader: bytes counted, never turned into strings in this process.
    let received = 0;
    const req = get(`${server.url}/sessions/big/events`, (res) => res.on('data', (b: Buffer) => (received += b.length)));
    try {
      const waiting = async () => (await sim!.stats('big')).inFlightChanges >= 1;
      await eventually(waiting, 10_000, 'the loop long-polling');
      await sim.appendEvents('big', 1);
      await eventually(() => received > DETAIL_BYTES, 20_000, 'the event delivered');
      // The answer that brought the event is followed at once by the next long-poll, which the upstream holds.
      await eventually(waiting, 10_000, 'the next long-poll sent');

      expect(await pageSizedStrings()).toEqual([]);
      // The check can see such a string: one held here is found.
      const held = Buffer.alloc(DETAIL_BYTES + 10, 'x').toString('latin1');
      expect((await pageSizedStrings()).length).toBeGreaterThanOrEqual(1);
      expect(held.length).toBe(DETAIL_BYTES + 10);
    } finally {
      req.destroy();
    }
  });
});
