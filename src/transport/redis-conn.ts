/**
 * The Redis connections of a cluster-mode instance: one for commands
 * (appends, leases, reads of the log), one of its own for blocking reads,
 * so a parked XREAD never delays a lease renewal, one for pub/sub messages
 * between instances (a subscribed connection takes no commands), and a probe
 * that PINGs four times a second. Each reconnects by itself with capped
 * backoff; while one is down its commands fail at once (no offline queue:
 * every caller has its own retry and its own deadline), and each failure is
 * counted and logged once per outage. A Redis that keeps the connection but
 * stops answering (hung, stopped, its machine frozen) is seen by the probe:
 * a PING unanswered, and nothing else answered, for REDIS_SILENT_MS; the
 * commands waiting then fail, and new ones fail at once until it answers.
 */
import { createHash } from 'node:crypto';
import { createClient, ErrorReply } from 'redis';
import type { Logger } from 'pino';
import type { Stats } from '../metrics.ts';

/**
 * A command not written to Redis within this fails (ms). A written one fails once Redis is judged silent (it may
 * still run later), never merely for a slow answer; the caller retries or gives up by its own deadline.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 3000;
/**
 * Longest pause between two reconnection attempts (ms); attempts start at 50 ms and double. Short: a connection back
 * late makes the outage look longer than it was, and one that looks longer than a lease has every instance serve its
 * sessions around Redis, a loop each (an audit: a 1.5 s restart under a 2 s lease, with 2 s here, gave two loops for
 * one session). Four connections an instance, a failed attempt each every quarter second while Redis is down.
 */
export const REDIS_RECONNECT_MAX_DELAY_MS = 250;
/** A connection attempt that takes longer than this is abandoned and retried (ms). */
export const REDIS_CONNECT_TIMEOUT_MS = 5000;
/**
 * A Redis that has answered nothing, a PING on the probe connection included, for this long (hung, stopped, its
 * machine frozen: the connection stays up) is 'not answering' (ms); it answers a PING at once when well.
 */
export const REDIS_SILENT_MS = 1000;
/**
 * Replies by which Redis refuses this client's connection (no password, or a wrong one). Not NOPERM: an ACL user may
 * be refused one command and allowed the probe's PING, and the state would flap with each of them.
 */
const REFUSAL_REPLY = /^(NOAUTH|WRONGPASS)\b/;
/** How often the probe connection PINGs Redis (ms; never two PINGs in flight). */
export const REDIS_PROBE_INTERVAL_MS = 250;

type Client = ReturnType<typeof createClient>;

/** Whether a command failed because Redis is at its maxmemory and refuses writes (`OOM ...`, also inside a script). */
export function isOutOfMemory(err: unknown): boolean {
  return err instanceof Error && /^OOM\b/.test(err.message);
}

/** A Lua script, run by EVALSHA with a fall back to EVAL when Redis does not hold it (after a restart). */
export interface LuaScript {
  readonly source: string;
  readonly sha1: string;
}

/** Defines a script once (its SHA1 computed here). */
export function lua(source: string): LuaScript {
  return { source, sha1: createHash('sha1').update(source).digest('hex') };
}

/** Whether Redis answers (see RedisConn.state). */
export type RedisState = 'ok' | 'unreachable' | 'not answering' | `refusing pollcast (${string})`;

/** What the rest of the transport sees of Redis. */
export interface RedisConn {
  /** One command on the command connection, timed and counted under `op`. */
  call<T>(op: string, args: readonly string[]): Promise<T>;
  /**
   * One script on the command connection. It fails once Redis is judged silent (it may still run later), unless
   * `waitForAnswer`: then, once written, it waits as long as Redis keeps the connection (for a script whose late
   * run the caller could not account for).
   */
  run<T>(op: string, script: LuaScript, keys: readonly string[], args: readonly string[], opts?: { waitForAnswer?: boolean }): Promise<T>;
  /** One blocking command on the reader connection (no timeout: the command's own BLOCK bounds it). */
  block<T>(args: readonly string[]): Promise<T>;
  /** Wakes the reader connection's blocked command (CLIENT UNBLOCK), so a new key is read at once. */
  unblockReader(): Promise<void>;
  /** Called each time the reader connection is ready again after a loss (Redis restarted or failed over). */
  onReaderReconnect(fn: () => void): void;
  /** 'ok' while Redis answers; 'unreachable' with the command connection down; 'not answering' when it is up but silent for REDIS_SILENT_MS. */
  readonly state: RedisState;
  /**
   * Since when (performance.now() ms) Redis has been away: the command connection down, or Redis silent (the
   * start of the silence, also when the connection was lost after it). Null while it answers.
   */
  readonly awaySince: number | null;
  /**
   * When (performance.now() ms) the Redis server this instance talks to
   * started, if it is a different server run from the one seen before (a
   * restart or a failover): its leases are gone, while loops that held them
   * may still run until their own deadline. Null when no such change was seen.
   */
  readonly restartedAt: number | null;
  /**
   * When (performance.now() ms) Redis last answered again after being away (its command connection back, a
   * restarted server's included, or a silence over), or was first reached later than REDIS_SILENT_MS after the
   * start; null when it never was away.
   */
  readonly backAt: number | null;
  /** Called when such a new server run is seen; returns a function that unsubscribes. */
  onServerRestart(fn: () => void): () => void;
  /** Sends `message` to every instance listening on `channel` (this one included). */
  publish(channel: string, message: string): Promise<void>;
  /** Calls `fn` with each message on `channel`, from the next (re)connection on; one listener per channel. */
  listen(channel: string, fn: (message: string) => void): void;
  close(): Promise<void>;
}

export interface RedisConnOptions {
  url: string;
  log: Logger;
  stats: Stats;
  observe?: (op: string, seconds: number) => void;
}

function countError(stats: Stats, op: string): void {
  stats.redisErrors[op] = (stats.redisErrors[op] ?? 0) + 1;
}

/** Connects (in the background: Redis may be down at start) and returns the handle at once. */
export function connectRedis(opts: RedisConnOptions): RedisConn {
  const { log, stats } = opts;
  const options = {
    url: opts.url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
      // Capped exponential backoff with jitter; never gives up (Redis being away is a state, not an end).
      reconnectStrategy: (retries: number) => Math.min(REDIS_RECONNECT_MAX_DELAY_MS, 50 * 2 ** Math.min(retries, 6)) * (0.75 + Math.random() / 2),
    },
  };
  const main: Client = createClient(options);
  const reader: Client = main.duplicate();
  const subscriber: Client = main.duplicate();
  let probe: Client = main.duplicate();
  // Channels to listen on, and whether this connection subscribed them yet (the client itself subscribes
  // them again after a reconnection).
  const channels = new Map<string, { fn: (message: string) => void; subscribed: boolean }>();
  const subscribeAll = (): void => {
    for (const [channel, c] of channels) {
      if (c.subscribed || !subscriber.isReady) continue;
      c.subscribed = true;
      subscriber.subscribe(channel, (message) => c.fn(message)).catch(() => {
        c.subscribed = false;
        countError(stats, 'subscribe');
      });
    }
  };
  let readerId: string | null = null;
  const readerListeners: Array<() => void> = [];
  let closed = false;

  function watch(client: Client, role: string, onReady?: (again: boolean) => void): void {
    let down = false;
    let everReady = false;
    client.on('error', (err: Error) => {
      if (closed) return;
      countError(stats, 'connection');
      // A password refused while connecting (WRONGPASS to the AUTH the client sends first) is Redis saying no, not
      // Redis away: said as a refusal (an audit, 7 Dec 2026: "unreachable" for minutes, the password wrong).
      const refused = refusedBy(err);
      if (client === main) mainRefused = refused;
      // One line per outage, not one per reconnection attempt.
      if (!down && !refused) log.warn({ role, err: err.message }, everReady ? 'redis connection lost; reconnecting' : 'redis unreachable (never connected yet); retrying');
      down = true;
    });
    client.on('ready', () => {
      if (down) log.info({ role }, 'redis connection back');
      const again = everReady;
      down = false;
      everReady = true;
      onReady?.(again);
    });
  }
  // Away: the command connection down since `lostAt`, or Redis silent since `silentSince`: a PING unanswered (on
  // the probe connection, or the commands' one while the probe's is not ready), and no answer on the commands'
  // connection either, for REDIS_SILENT_MS (a large or slow answer on the commands' connection is not silence: a
  // well Redis answers the probe's PING at once).
  let lostAt: number | null = performance.now();
  let connectedOnce = false;
  let pingSentAt: number | null = null;
  let lastAnswerAt = 0;
  let silentSince: number | null = null;
  let renewProbe = (): void => {};
  // A PING on the commands' connection while Redis is judged silent (one at a time): its answer ends the silence
  // even when only the probe's connection was stuck (nothing else is written then to contradict it).
  let canarySent = false;
  // The written commands' callers: failed at once when Redis is judged silent.
  const waiting = new Set<(err: Error) => void>();
  const notAnswering = () => new Error(`redis not answering (no answer for ${REDIS_SILENT_MS} ms)`);
  let backAt: number | null = null;
  // Redis answers, but refuses this client (a password it needs that REDIS_URL lacks, or a wrong one): since when,
  // and its word. Away as much as a Redis that is down: sessions are served from the upstream
  // meanwhile. An operator audit (7 Dec 2026) saw /readyz say "ok", no log line, and no session served at all.
  let refusedSince: number | null = null;
  let refusedWith = '';
  // The commands' connection's latest error was a refusal (it cannot connect because Redis refuses it).
  let mainRefused = false;
  const refusedBy = (err: unknown): boolean => {
    if (!(err instanceof ErrorReply) || !REFUSAL_REPLY.test(err.message)) return false;
    if (refusedSince === null) {
      refusedSince = performance.now();
      refusedWith = err.message.split(/\s/, 1)[0]!;
      countError(stats, 'refused');
      log.warn({ err: err.message }, "redis refuses pollcast (check REDIS_URL's user and password); sessions are served from the upstream meanwhile");
    }
    return true;
  };
  const accepted = () => {
    if (refusedSince === null) return;
    refusedSince = null;
    backAt = performance.now();
    log.info('redis accepts pollcast again');
  };
  const heard = () => {
    lastAnswerAt = performance.now();
    if (silentSince === null) return;
    silentSince = null;
    backAt = lastAnswerAt;
    log.info('redis answers again');
  };
  main.on('error', () => (lostAt ??= performance.now()));
  main.on('ready', () => {
    mainRefused = false;
    // Back after a loss (maybe a new, empty run), or first reached only after Redis was away at the start (other
    // instances may have served sessions on their own meanwhile): not a first connection made at once.
    if (lostAt !== null && (connectedOnce || performance.now() - lostAt > REDIS_SILENT_MS)) backAt = performance.now();
    connectedOnce = true;
    lostAt = null;
    // A new connection: silence is judged afresh.
    silentSince = null;
  });
  const ping = () => {
    if (pingSentAt !== null || closed) return;
    // The probe's connection not ready (still connecting, or again after a loss): the commands' connection is
    // asked instead, or a Redis that froze meanwhile would never be judged silent and its callers would wait
    // for ever. (A large answer ahead of that PING may then be taken for silence: the probe is rarely away.)
    const via = probe.isReady ? probe : main.isReady ? main : null;
    if (via === null) return;
    const sentAt = (pingSentAt = performance.now());
    via.sendCommand(['PING']).then(
      () => {
        accepted();
        if (pingSentAt !== sentAt) return;
        pingSentAt = null;
        heard();
      },
      // A lost probe connection: its next ready pings again (a lost command connection is `lostAt`'s). A refusal is
      // an answer: Redis is there, and says no.
      (err: unknown) => {
        if (refusedBy(err)) heard();
        if (pingSentAt === sentAt) pingSentAt = null;
      },
    );
  };
  // Silence is declared only by a tick that came on time: after this process itself stalled (a long
  // synchronous stretch), an answer may be waiting unread, and the next tick, after it was read, judges.
  let lastTick = performance.now();
  const prober = setInterval(() => {
    const now = performance.now();
    const onTime = now - lastTick < REDIS_PROBE_INTERVAL_MS * 2;
    lastTick = now;
    const quietSince = pingSentAt === null ? null : Math.max(pingSentAt, lastAnswerAt);
    if (onTime && silentSince === null && quietSince !== null && main.isReady && now - quietSince >= REDIS_SILENT_MS) {
      silentSince = quietSince;
      countError(stats, 'silent');
      log.warn({ silentMs: Math.round(now - quietSince) }, 'redis connected but not answering; waiting for it');
      for (const fail of waiting) fail(notAnswering());
      waiting.clear();
    }
    if (silentSince !== null && !canarySent && main.isReady) {
      canarySent = true;
      main.sendCommand(['PING']).then(
        () => {
          canarySent = false;
          if (pingSentAt !== null) renewProbe();
          heard();
        },
        () => (canarySent = false),
      );
    }
    ping();
  }, REDIS_PROBE_INTERVAL_MS);
  prober.unref();

  const send = <T>(args: readonly string[], waitForAnswer = false): Promise<T> => {
    // Not written while Redis is silent: commands written then would pile up, and all run once it answers.
    if (silentSince !== null) return Promise.reject(notAnswering());
    // The client's own timeout covers only the wait to be written; a written command fails once Redis is judged
    // silent (it may still run later), or waits as long as Redis is heard (a large answer on a slow link).
    const command = main.sendCommand(args as string[], { timeout: REDIS_COMMAND_TIMEOUT_MS }) as Promise<T>;
    const answered = (reply: T) => {
      heard();
      return reply;
    };
    const failed = (err: unknown): never => {
      // An error reply is an answer; a lost connection is not (`lostAt` covers it).
      if (err instanceof ErrorReply) heard();
      refusedBy(err);
      throw err;
    };
    if (waitForAnswer) return command.then(answered, failed);
    return new Promise<T>((resolve, reject) => {
      waiting.add(reject);
      command.then(answered, failed).then(
        (reply) => {
          waiting.delete(reject);
          resolve(reply);
        },
        (err: unknown) => {
          waiting.delete(reject);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  };

  let runId: string | null = null;
  let restartedAt: number | null = null;
  const restartListeners = new Set<() => void>();
  // Each (re)connection asks the server's run id and uptime: a new run id is a Redis that lost its leases.
  watch(main, 'commands', () => {
    send(['INFO', 'server'])
      .then((info) => {
        const text = String(info);
        const id = /run_id:(\w+)/.exec(text)?.[1] ?? null;
        const uptimeS = Number(/uptime_in_seconds:(\d+)/.exec(text)?.[1] ?? 0);
        if (id !== null && runId !== null && id !== runId) {
          restartedAt = performance.now() - uptimeS * 1000;
          log.warn({ uptimeS }, 'redis is a new server run (restarted or failed over): its leases are gone');
          for (const fn of restartListeners) fn();
        }
        runId = id ?? runId;
      })
      .catch(() => countError(stats, 'info'));
  });
  watch(reader, 'reader', (again) => {
    readerId = null;
    if (again) for (const fn of readerListeners) fn();
  });
  watch(subscriber, 'subscriber', subscribeAll);
  const start = (client: Client, role: string) => {
    // connect() retries by the strategy above and only rejects once closed.
    client.connect().catch((err: unknown) => {
      if (!closed) log.error({ role, err }, 'redis client stopped connecting');
    });
  };
  watch(probe, 'probe');
  for (const [client, role] of [[main, 'commands'], [reader, 'reader'], [subscriber, 'subscriber'], [probe, 'probe']] as const) start(client, role);
  // The probe's connection stuck while Redis answers on the commands' one: a new probe connection.
  renewProbe = () => {
    const stuck = probe;
    probe = main.duplicate();
    pingSentAt = null;
    watch(probe, 'probe');
    start(probe, 'probe');
    try {
      stuck.destroy();
    } catch {
      // already closed
    }
  };

  async function timed<T>(op: string, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const reply = await run();
      opts.observe?.(op, (performance.now() - started) / 1000);
      return reply;
    } catch (err) {
      countError(stats, op);
      throw err;
    }
  }

  return {
    call: (op, args) => timed(op, () => send(args)),
    run: (op, script, keys, args, runOpts) =>
      timed(op, async () => {
        const tail = [String(keys.length), ...keys, ...args];
        const wait = runOpts?.waitForAnswer ?? false;
        try {
          return await send(['EVALSHA', script.sha1, ...tail], wait);
        } catch (err) {
          // A restarted or flushed Redis forgot the script: send it whole once.
          if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
          return await send(['EVAL', script.source, ...tail], wait);
        }
      }),
    async block<T>(args: readonly string[]): Promise<T> {
      // The reader's id is asked on the reader connection itself, before it blocks, after each (re)connection.
      readerId ??= String(await reader.sendCommand(['CLIENT', 'ID']));
      return (await reader.sendCommand(args as string[])) as T;
    },
    async unblockReader() {
      if (readerId === null || !main.isReady) return;
      await send(['CLIENT', 'UNBLOCK', readerId]).catch(() => countError(stats, 'unblock'));
    },
    onReaderReconnect(fn) {
      readerListeners.push(fn);
    },
    get state() {
      if (!main.isReady) return mainRefused && refusedSince !== null ? (`refusing pollcast (${refusedWith})` as const) : 'unreachable';
      if (refusedSince !== null) return `refusing pollcast (${refusedWith})` as const;
      return silentSince === null ? 'ok' : 'not answering';
    },
    get awaySince() {
      if (main.isReady) return refusedSince === null ? silentSince : Math.min(refusedSince, silentSince ?? Infinity);
      // Silent first, then lost: away since the silence began.
      return Math.min(lostAt ?? performance.now(), silentSince ?? Infinity);
    },
    get restartedAt() {
      return restartedAt;
    },
    get backAt() {
      return backAt;
    },
    onServerRestart(fn) {
      restartListeners.add(fn);
      return () => restartListeners.delete(fn);
    },
    async publish(channel, message) {
      await timed('publish', () => send(['PUBLISH', channel, message]));
    },
    listen(channel, fn) {
      if (channels.has(channel)) throw new Error(`already listening on ${channel}`);
      channels.set(channel, { fn, subscribed: false });
      subscribeAll();
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(prober);
      for (const client of [probe, subscriber, reader, main]) {
        // destroy(): a blocked XREAD would hold quit() until its BLOCK ran out.
        try {
          client.destroy();
        } catch {
          // already closed
        }
      }
    },
  };
}
