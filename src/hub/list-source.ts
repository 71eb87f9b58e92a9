/**
 * Where a session list's listings come from, behind one narrow interface
 * owned by the hub (as the session transport is): `localListSource` polls
 * the upstream in this process; cluster mode (transport/redis-lists.ts) polls
 * it wherever the list's lease is, once for the cluster, and hands every
 * instance the same outcomes.
 */
import { sleep } from '../upstream/backoff.ts';
import type { ListOutcome } from '../upstream/list-client.ts';

/** One list to keep supplied. */
export interface ListRun {
  /** The list's name: credential digest (or `operator`) and canonical filter; never a credential. */
  readonly key: string;
  /** Reads the list upstream once (only where the poll runs). */
  poll(signal: AbortSignal): Promise<ListOutcome>;
  /** The pause from the start of one poll to the next, after `outcome`. */
  nextDelayMs(outcome: ListOutcome): number;
  /** Every outcome, wherever the poll ran. */
  onOutcome(outcome: ListOutcome): void;
}

/** Keeps lists supplied. */
export interface ListSource {
  /** Supplies `list` until `signal` aborts; resolves once it stopped (a cluster lease let go), never rejects. */
  run(list: ListRun, signal: AbortSignal): Promise<void>;
}

/** Polls here: one loop per list, paced from the start of one poll to the next. */
export const localListSource: ListSource = {
  async run(list, signal) {
    while (!signal.aborted) {
      const started = performance.now();
      const outcome = await list.poll(signal);
      if (signal.aborted) return;
      list.onOutcome(outcome);
      await sleep(Math.max(0, list.nextDelayMs(outcome) - (performance.now() - started)), signal);
    }
  },
};
