/**
 * One session loop's lease, wanted by every instance with subscribers for it.
 * The keeper tries to take it (and again when the holder's lease should have
 * run out, or at once when a leader's release marker is read); holding it, it
 * runs a leader term: renews every third of the lease on its own timer,
 * whatever the loop's long-poll is doing, and ends the term by itself,
 * aborting the loop and its call, just before the lease could have run out
 * unrenewed (a lost connection, a long pause). The lease is independent of
 * the long-poll: a deposed leader's call still in flight upstream (a frozen
 * process cannot abort it) costs one extra upstream call, never a duplicate
 * event, since fencing in the log scripts refuses whatever it would write.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Stats } from '../metrics.ts';
import { sleep } from '../upstream/backoff.ts';
import { ACQUIRE, decodeMeta, DISCARD, LEASE_TTL, RELEASE, RENEW, type LogKeys, type LogMeta } from './redis-log.ts';
import { isOutOfMemory, REDIS_RECONNECT_MAX_DELAY_MS, type RedisConn } from './redis-conn.ts';

/** Shortest pause between two attempts at a lease someone else holds (ms). */
export const LEASE_RETRY_MIN_MS = 200;
/** How often an instance with no credential to lead on checks again whether it has one (ms). */
export const NO_CREDENTIAL_RECHECK_MS = 500;
/** Pause after a failed lease command (ms): Redis is away; the connection retries by itself meanwhile. */
export const LEASE_ERROR_RETRY_MS = 500;

/** Past the longest reconnect delay, how long after a Redis restart no lease is taken (ms). */
export const RESTART_HOLD_SLACK_MS = 1000;
/** A term ends this long (ms, at most a quarter of the lease) before its lease could have run out unrenewed. */
export const LEASE_END_MARGIN_MS = 500;
/** How long before its lease could run out unrenewed a term ends (ms): LEASE_END_MARGIN_MS, at most a quarter lease. */
const endMarginMs = (leaseMs: number): number => Math.min(LEASE_END_MARGIN_MS, leaseMs / 4);
/** A term shorter than this (ms) is followed by a pause before the next. */
export const LEASE_TERM_MIN_MS = 1000;

/** A lease term handed to the leader. */
export interface LeaderTerm {
  token: number;
  /** What the lease key holds while the term lasts. */
  leaseValue: string;
  /** The log as the lease found it (next, base, state; all null for a new log). */
  meta: LogMeta;
  /** What is left of a wait the upstream asked an earlier leader for (Retry-After, ms; 0 when none). */
  holdOffMs: number;
  /** Aborts when the term ends (lease lost, not renewable in time, or the keeper stopped). */
  signal: AbortSignal;
}

/**
 * How a term ended: 'done' (the session is over, or its loop stopped for good): stop wanting the lease;
 * 'again': try again; 'yield': let the lease go now (another instance may do better) and try again
 * once `notBefore` allows; 'unconfirmed': the upstream refused the session at its first contact: stop,
 * and drop the log if nothing was ever written to it.
 */
export type TermEnd = 'done' | 'again' | 'yield' | 'unconfirmed';

export interface LeaseOptions {
  redis: RedisConn;
  keys: LogKeys;
  sessionId: string;
  instanceId: string;
  leaseMs: number;
  maxEntries: number;
  retentionMs: number;
  log: Logger;
  stats: Stats;
  /** Runs the loop for one term; resolves once it stopped. */
  lead(term: LeaderTerm): Promise<TermEnd>;
  /** Each attempt reports the log's identity (and whether it is over), so a reader can see it was replaced. */
  onLogSeen(born: string, ended: boolean): void;
  /** No attempt at the lease before this time (performance.now() ms), e.g. while Redis refuses writes. */
  notBefore?(): number;
  /** Whether a loop here would have a credential to run on; no attempt at the lease while it would not. */
  canLead?(): boolean;
  /**
   * Called at each check that found `canLead` false (about every NO_CREDENTIAL_RECHECK_MS), with whether an
   * instance holds the lease (null when Redis did not say).
   */
  onCannotLead?(held: boolean | null): void;
  /** Redis refused the lease's own write for want of memory. */
  onOutOfMemory?(): void;
}

/** Wants one lease until its signal aborts. */
export class LeaseKeeper {
  private readonly opts: LeaseOptions;
  private readonly signal: AbortSignal;
  private wake: (() => void) | null = null;

  constructor(opts: LeaseOptions, signal: AbortSignal) {
    this.opts = opts;
    this.signal = signal;
  }

  /** Cuts the current wait short: the holder released the lease. */
  poke(): void {
    this.wake?.();
  }

  /** Runs until the signal aborts or the session is over; lets the lease go on the way out. */
  async run(): Promise<void> {
    const { redis, keys, instanceId, leaseMs, retentionMs, log, stats, sessionId } = this.opts;
    let mine = '';
    // The identity of the log last seen: one replaced under us (FLUSHALL) may still have a leader from before.
    let seenBorn: string | null = null;
    // A hold owed to a replaced log, carried over when its lease is renewed first.
    let heldBack = false;
    try {
      while (!this.signal.aborted) {
        // A Redis that lost its leases (restarted empty): a leader from before learns it at its first renewal
        // once it reconnects (it renews at once then), and every instance reconnects within the reconnect
        // delay: take none until then. A leader that cannot reconnect stops by its own deadline, and
        // its writes are refused meanwhile (fencing), so the log stays right either way.
        const restartedAt = redis.restartedAt;
        const holdUntil = restartedAt === null ? 0 : restartedAt + Math.min(leaseMs, REDIS_RECONNECT_MAX_DELAY_MS + RESTART_HOLD_SLACK_MS);
        const notBefore = Math.max(holdUntil, this.opts.notBefore?.() ?? 0);
        if (performance.now() < notBefore) {
          await this.pause(notBefore - performance.now());
          continue;
        }
        if (this.opts.canLead?.() === false) {
          if (this.opts.onCannotLead) {
            const ttl = await redis.run<number>('lease-ttl', LEASE_TTL, [keys.lease], []).catch(() => null);
            if (this.signal.aborted) break;
            this.opts.onCannotLead(ttl === null ? null : ttl !== -2);
          }
          // Asked again soon: a reader with a key may arrive here (or the lease holder's lease run out meanwhile).
          await this.pause(Math.min(leaseMs / 3, NO_CREDENTIAL_RECHECK_MS));
          continue;
        }
        let reply: Array<string | number | null>;
        const sentAt = performance.now();
        try {
          // Waits for its answer, however long Redis is silent: one that timed out here could still take the lease
          // later, for a value this keeper never learnt (nobody would lead until it ran out).
          reply = await redis.run('acquire', ACQUIRE, [keys.lease, keys.meta], [instanceId, String(leaseMs), String(retentionMs), mine, randomBytes(8).toString('hex')], { waitForAnswer: true });
        } catch (err) {
          if (isOutOfMemory(err)) this.opts.onOutOfMemory?.();
          await this.pause(LEASE_ERROR_RETRY_MS);
          continue;
        }
        const [kind, born] = reply as [string, string];
        this.opts.onLogSeen(born, kind === 'ended');
        const replaced = seenBorn !== null && born !== seenBorn;
        seenBorn = born;
        if (kind === 'ended') return;
        if (kind === 'held') {
          mine = '';
          // Back when the holder's lease would run out, checking at least every third of a lease.
          const pttl = Number(reply[2]);
          await this.pause(Math.max(LEASE_RETRY_MIN_MS, Math.min(leaseMs / 3, (pttl > 0 ? pttl : 0) + 50)));
          continue;
        }
        const [, , token, takeover, next, base, state, holdOffMs] = reply as [string, string, number, number, string | null, string | null, string | null, number | undefined];
        const wasMine = mine !== '';
        mine = `${token}:${instanceId}`;
        if (takeover === 1) {
          stats.leaseTakeovers++;
          log.info({ session: sessionId, log: keys.log, fence: token }, 'took over a session whose leader vanished (its lease expired)');
        }
        // A log replaced under us (flushed): a leader of the old one runs until its next renewal finds its
        // lease gone, at most a third of a lease away: hold the new lease that long before starting a loop.
        const holdFirst: boolean = heldBack || (replaced && !wasMine);
        // Answered too late to count on (Redis was silent): when it was taken is unknown, so renew it first.
        const late = performance.now() - sentAt >= leaseMs - 2 * endMarginMs(leaseMs);
        heldBack = late && holdFirst;
        if (late) continue;
        const meta = decodeMeta(['born', born, ...(next !== null ? ['next', next] : []), ...(base !== null ? ['base', base] : []), ...(state !== null ? ['state', state] : [])]);
        if (!wasMine) log.debug({ session: sessionId, log: keys.log, fence: token, next: meta.next }, 'lease taken');
        const end = await this.term(token, mine, meta, Number(holdOffMs ?? 0), sentAt, holdFirst ? leaseMs / 3 + LEASE_END_MARGIN_MS : 0);
        if (end === 'done') return;
        if (end === 'unconfirmed') {
          const dropped = await redis.run<number>('discard', DISCARD, [keys.lease, keys.meta, keys.log], [mine]).catch(() => 0);
          if (dropped === 1) mine = '';
          return;
        }
        if (end === 'yield') {
          await this.release(mine);
          mine = '';
          continue;
        }
        // A loop that stopped at once (an upstream fault at its start) is not restarted in a tight loop.
        if (performance.now() - sentAt < LEASE_TERM_MIN_MS) await this.pause(LEASE_ERROR_RETRY_MS);
      }
    } finally {
      if (mine !== '') await this.release(mine);
    }
  }

  private async release(value: string): Promise<void> {
    const { redis, keys, maxEntries, retentionMs } = this.opts;
    await redis.run('release', RELEASE, [keys.lease, keys.meta, keys.log], [value, String(maxEntries), String(retentionMs)]).catch(() => {});
  }

  // Holds the lease for one loop: renewals on their own timer, and a deadline that ends the term
  // just before the lease could have run out unrenewed.
  private async term(token: number, leaseValue: string, meta: LogMeta, holdOffMs: number, acquiredAt: number, holdMs: number): Promise<TermEnd> {
    const { redis, keys, leaseMs, retentionMs, log, stats, sessionId } = this.opts;
    const margin = endMarginMs(leaseMs);
    const ended = new AbortController();
    const onStop = () => ended.abort();
    this.signal.addEventListener('abort', onStop, { once: true });
    // Stopped while the lease attempt waited for its answer (Redis silent): no loop; the lease is let go.
    if (this.signal.aborted) ended.abort();
    let deadline: NodeJS.Timeout | undefined;
    let renewal: NodeJS.Timeout | undefined;
    const holdUntil = (validUntil: number) => {
      clearTimeout(deadline);
      deadline = setTimeout(() => {
        log.warn({ session: sessionId, log: keys.log }, 'lease not renewed in time; stopping this loop so no two run');
        ended.abort();
      }, Math.max(0, validUntil - margin - performance.now()));
    };
    const renew = async () => {
      if (ended.signal.aborted) return;
      const sentAt = performance.now();
      try {
        const [kind] = await redis.run<[string, string]>('renew', RENEW, [keys.lease, keys.meta, keys.log], [leaseValue, String(leaseMs), String(retentionMs)]);
        // The term ended while this renewal was answered (the session over, say): a new deadline now would outlive
        // the term and warn of a lapse that never mattered (the lease is let go, or was, right behind this answer).
        if (ended.signal.aborted) return;
        if (kind !== 'ok') {
          log.warn({ session: sessionId, log: keys.log }, 'lease lost; stopping this loop');
          ended.abort();
          return;
        }
        holdUntil(sentAt + leaseMs);
        renewal = setTimeout(renew, leaseMs / 3);
      } catch {
        // Keep trying while the deadline has not passed; the connection reconnects by itself.
        if (!ended.signal.aborted) renewal = setTimeout(renew, LEASE_ERROR_RETRY_MS);
      }
    };
    // Counted from when the acquire command was sent: Redis set the lease later than that, never earlier. So is
    // the first renewal: an answer that came late (Redis was slow or silent) is renewed at once.
    holdUntil(acquiredAt + leaseMs);
    renewal = setTimeout(renew, Math.max(0, acquiredAt + leaseMs / 3 - performance.now()));
    // A new Redis run has no lease of ours: find out at once rather than at the next renewal.
    const unsubscribe = redis.onServerRestart(() => {
      clearTimeout(renewal);
      void renew();
    });
    stats.leasesHeld++;
    try {
      if (ended.signal.aborted || (holdMs > 0 && !(await sleep(holdMs, ended.signal)))) return 'again';
      return await this.opts.lead({ token, leaseValue, meta, holdOffMs, signal: ended.signal });
    } finally {
      stats.leasesHeld--;
      unsubscribe();
      clearTimeout(deadline);
      clearTimeout(renewal);
      this.signal.removeEventListener('abort', onStop);
      ended.abort();
    }
  }

  // Waits `ms`, or less when poked or stopped.
  private async pause(ms: number): Promise<void> {
    const poked = new AbortController();
    this.wake = () => poked.abort();
    const onStop = () => poked.abort();
    this.signal.addEventListener('abort', onStop, { once: true });
    await sleep(ms, poked.signal);
    this.signal.removeEventListener('abort', onStop);
    this.wake = null;
  }
}
