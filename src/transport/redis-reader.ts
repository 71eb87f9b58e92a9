/**
 * The instance's one blocking reader: a single XREAD on a connection of its
 * own waits on the logs of every session this instance follows, and hands
 * each log's new entries to its follower. A follower added while the read
 * is parked wakes it (CLIENT UNBLOCK from the command connection), so its
 * key is read from the next round on.
 */
import type { Logger } from 'pino';
import { sleep } from '../upstream/backoff.ts';
import { decodeEntries, type LogEntry } from './redis-log.ts';
import type { RedisConn } from './redis-conn.ts';

/** How long one XREAD may park (ms); a round also ends as soon as any followed log gets an entry. */
export const READ_BLOCK_MS = 5000;
/** Entries read per log per round (the rest come in the next round, at once). */
export const READ_COUNT = 500;
/** Pause after a failed read (ms); the connection reconnects by itself meanwhile. */
export const READ_RETRY_MS = 250;
/** How soon an added key that missed the parked read is woken for again (ms): CLIENT UNBLOCK can overtake the XREAD it meant. */
const UNBLOCK_RETRY_MS = 50;

/** What the reader needs of a follower. */
export interface ReadTarget {
  /** The log's stream key. */
  readonly key: string;
  /** Last entry id handed over, or null while the follower catches up by itself (not read then). */
  cursor: string | null;
  /** Bumped on each catch-up: entries read for an older generation are dropped. */
  readonly generation: number;
  /** New entries, in stream order. */
  deliver(entries: LogEntry[]): void;
}

type XReadReply = Array<[string, Array<[string, string[]]>]> | null;

/** Multiplexes every followed log onto one blocking read. */
export class LogReader {
  private readonly redis: RedisConn;
  private readonly log: Logger;
  private readonly targets = new Map<string, ReadTarget>();
  private closed = false;
  private idle: (() => void) | null = null;
  private version = 0;
  private parkedVersion = -1;
  private retry: NodeJS.Timeout | null = null;
  private readonly stop = new AbortController();
  private readonly loop: Promise<void>;

  constructor(redis: RedisConn, log: Logger) {
    this.redis = redis;
    this.log = log;
    this.loop = this.run();
  }

  /** Starts (or restarts, after a catch-up) reading a target from its cursor. */
  add(target: ReadTarget): void {
    this.targets.set(target.key, target);
    this.version++;
    this.idle?.();
    this.wakeParked();
  }

  /** Stops reading a target. */
  remove(target: ReadTarget): void {
    if (this.targets.get(target.key) === target) this.targets.delete(target.key);
  }

  /** Stops reading; the read parked now ends when its connection closes (or its BLOCK runs out). */
  close(): Promise<void> {
    this.closed = true;
    this.stop.abort();
    this.idle?.();
    if (this.retry) clearTimeout(this.retry);
    return this.loop;
  }

  // A parked read that does not hold the newest key set is woken; again shortly if the wake came too early.
  private wakeParked(): void {
    if (this.parkedVersion < 0 || this.parkedVersion === this.version || this.retry) return;
    void this.redis.unblockReader();
    this.retry = setTimeout(() => {
      this.retry = null;
      this.wakeParked();
    }, UNBLOCK_RETRY_MS);
    this.retry.unref();
  }

  private async run(): Promise<void> {
    // One read per call of `read`, so its reply (frames, screenshots among them) is no longer referenced from
    // this frame while the next XREAD blocks: held through the block it would be promoted to the old generation.
    while (!this.closed) await this.read();
  }

  /** One XREAD round over the targets with a cursor (or a wait for one). */
  private async read(): Promise<void> {
    const round = [...this.targets.values()].filter((t) => t.cursor !== null);
    if (round.length === 0) {
      await new Promise<void>((resolve) => (this.idle = resolve));
      this.idle = null;
      return;
    }
    const generations = new Map(round.map((t) => [t, t.generation]));
    const args = ['XREAD', 'COUNT', String(READ_COUNT), 'BLOCK', String(READ_BLOCK_MS), 'STREAMS', ...round.map((t) => t.key), ...round.map((t) => t.cursor!)];
    let reply: XReadReply;
    this.parkedVersion = this.version;
    try {
      reply = await this.redis.block<XReadReply>(args);
    } catch (err) {
      this.parkedVersion = -1;
      if (this.closed) return;
      this.log.debug({ err: (err as Error).message }, 'log read failed; retrying');
      await sleep(READ_RETRY_MS, this.stop.signal);
      return;
    } finally {
      this.parkedVersion = -1;
    }
    for (const [key, raw] of reply ?? []) {
      const target = this.targets.get(key);
      if (!target || target.generation !== generations.get(target) || raw.length === 0) continue;
      target.cursor = raw.at(-1)![0];
      target.deliver(decodeEntries(raw));
    }
  }
}
