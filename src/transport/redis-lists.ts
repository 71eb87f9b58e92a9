/**
 * Cluster mode's session lists: one upstream poll per list for the whole
 * cluster. Every instance with viewers of a list wants its lease (a Redis key
 * set NX with an expiry, renewed by its holder each poll); the holder polls
 * the upstream and writes each outcome, numbered, into the list's hash; every
 * instance (the holder included) takes the outcomes from there, so all of
 * them see the same listings. A holder that dies stops renewing and another
 * instance takes the lease within it. Only instances whose own viewers hold a
 * list's credential want its lease, so a caller's key (AUTH=upstream) never
 * leaves the instances it reached: Redis holds its digest and the listings.
 * While Redis fails, each instance polls its own viewers' lists.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { ListRun, ListSource } from '../hub/list-source.ts';
import { sleep } from '../upstream/backoff.ts';
import type { ListOutcome } from '../upstream/list-client.ts';
import { lua, type RedisConn } from './redis-conn.ts';

/** Takes the lease when free, or renews it when held by `ARGV[1]`: 1 when held by the caller now, else 0. */
const TAKE = lua(`
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`);
/** Lets the lease go if the caller holds it. */
const LET_GO = lua(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`);
/** Writes an outcome under the next number, with when its poll started (ms since the epoch; kept as long as the list might be read). */
const WRITE = lua(`
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'outcome', ARGV[1], 'at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return seq`);
/** The newest outcome when its number is not `ARGV[1]`: {seq} when nothing is new, {seq, outcome, at} otherwise. */
const READ = lua(`
local seq = redis.call('HGET', KEYS[1], 'seq')
if not seq then return {} end
if seq == ARGV[1] then return {seq} end
local m = redis.call('HMGET', KEYS[1], 'outcome', 'at')
return {seq, m[1], m[2] or '0'}`);

/** How often a non-holder looks for a new outcome, as a share of the poll interval. */
const READS_PER_INTERVAL = 4;
/** Shortest pause between two reads of a list's outcome (ms). */
const MIN_READ_PAUSE_MS = 100;
/** A lease lasts this many poll intervals (at least LEASE_MIN_MS): a dead holder is replaced within it. */
const LEASE_INTERVALS = 3;
/** Shortest list lease (ms): a poll (up to 100 pages) must fit in it. */
const LEASE_MIN_MS = 10_000;
/** Pause after a failed Redis command (ms); the connection reconnects by itself. */
const REDIS_ERROR_PAUSE_MS = 500;
/**
 * Redis failing (down, silent, refusing writes) this long: each instance polls its viewers' lists itself, as one
 * process does, until Redis shares them again (ms). The lease holder stops polling at its first failure, so the
 * cluster is then without any poll.
 */
export const LIST_LOCAL_AFTER_MS = 1500;

export interface RedisListSourceOptions {
  redis: RedisConn;
  keyPrefix: string;
  instanceId: string;
  /** The poll interval (ms): paces reads and sizes the lease. */
  pollMs: number;
  log: Logger;
}

/** Creates the cluster's list source on an open connection. */
export function createRedisListSource(opts: RedisListSourceOptions): ListSource {
  const { redis, instanceId, log } = opts;
  const leaseMs = Math.max(LEASE_MIN_MS, LEASE_INTERVALS * opts.pollMs);
  const readPauseMs = Math.max(MIN_READ_PAUSE_MS, opts.pollMs / READS_PER_INTERVAL);

  async function run(list: ListRun, signal: AbortSignal): Promise<void> {
    // A hash of the key: the filter may hold any text, and key names should not.
    const name = createHash('sha256').update(list.key).digest('hex').slice(0, 32);
    const leaseKey = `${opts.keyPrefix}list:${name}:lease`;
    const dataKey = `${opts.keyPrefix}list:${name}:data`;
    let seen = '';
    let nextPollAt = 0;
    let holding = false;
    // Since when Redis fails this list (null while it works), the next poll of this instance's own meanwhile, and
    // when the last of those started (epoch ms): an older outcome read from Redis afterwards (a write made before
    // the outage that ran late) is not shown over it.
    let failingSince: number | null = null;
    let nextLocalAt = 0;
    let localPolledAt = 0;
    try {
      while (!signal.aborted) {
        try {
          // A Redis known to be away is not asked (a silent one would hold each command until its timeout).
          if (redis.state !== 'ok') throw new Error(`redis ${redis.state}`);
          holding = (await redis.run<number>('list-lease', TAKE, [leaseKey], [instanceId, String(leaseMs)])) === 1;
          let polled: { outcome: ListOutcome; started: number } | undefined;
          if (holding && performance.now() >= nextPollAt) {
            const started = performance.now();
            const startedAt = Date.now();
            const outcome = await list.poll(signal);
            if (signal.aborted || outcome.kind === 'aborted') return;
            await redis.run('list-write', WRITE, [dataKey], [JSON.stringify(outcome), String(leaseMs * 2), String(startedAt)]);
            polled = { outcome, started };
          }
          const read = await redis.run<string[]>('list-read', READ, [dataKey], [seen]);
          if (read.length >= 2 && !signal.aborted) {
            seen = read[0]!;
            if (Number(read[2] ?? 0) >= localPolledAt) list.onOutcome(JSON.parse(read[1]!) as ListOutcome);
          }
          // After the outcome was taken: the pause may depend on how many failed in a row.
          if (polled) nextPollAt = polled.started + list.nextDelayMs(polled.outcome);
          if (failingSince !== null) log.info('session list: shared through Redis again');
          failingSince = null;
        } catch (err) {
          if (failingSince === null) log.warn({ err: (err as Error).message }, 'session list: Redis fails; retrying, and polling here meanwhile');
          // From the start of Redis's silence or loss when it is known (the failed command may have waited for it).
          failingSince ??= Math.min(redis.awaySince ?? performance.now(), performance.now());
          if (performance.now() - failingSince >= LIST_LOCAL_AFTER_MS && performance.now() >= nextLocalAt) {
            const started = performance.now();
            localPolledAt = Date.now();
            const outcome = await list.poll(signal);
            if (signal.aborted || outcome.kind === 'aborted') return;
            list.onOutcome(outcome);
            nextLocalAt = started + list.nextDelayMs(outcome);
          }
          await sleep(REDIS_ERROR_PAUSE_MS, signal);
          continue;
        }
        await sleep(holding ? Math.max(0, Math.min(readPauseMs, nextPollAt - performance.now())) : readPauseMs, signal);
      }
    } finally {
      if (holding) await redis.run('list-release', LET_GO, [leaseKey], [instanceId]).catch(() => {});
    }
  }

  return { run };
}
