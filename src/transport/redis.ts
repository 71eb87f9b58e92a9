/**
 * Cluster mode (REDIS_URL): the Transport for N instances behind a load
 * balancer. Each supplied feed follows its session's shared log in Redis
 * (catch-up, then one blocking read per instance for every log), and wants
 * the session's lease: whichever instance holds it runs the one upstream loop
 * of the cluster, writing into the log through the fenced append script, and
 * its own feed reads the log like everyone else's. Data flows one way:
 * upstream → (leader) log → readers → feeds. The upstream stays the log of
 * record: whatever the log lost is read again from it by index.
 */
import { randomBytes } from 'node:crypto';
import type { Feed } from '../hub/feed.ts';
import type { Stats } from '../metrics.ts';
import type { FailureOutcome } from '../upstream/client.ts';
import { callerClient } from '../upstream/caller-client.ts';
import { backoffDelayMs, DEFAULT_BACKOFF } from '../upstream/backoff.ts';
import { Poller, type FirstContact, type PollerState } from '../upstream/poller.ts';
import { isKnown } from '../upstream/snapshot.ts';
import type { UpstreamEvent } from '../upstream/types.ts';
import { BYPASS_STORE, LOG_WRITTEN, STORE_DOWN_WAIT_MS, STORE_FULL_RETRY_MS, StoreBypasses, type Bypass } from './direct.ts';
import { FeedFollower } from './feed-follower.ts';
import { LeaseKeeper, type LeaderTerm, type TermEnd } from './lease.ts';
import { upstreamHistory, type LoopSettings } from './memory.ts';
import { connectRedis, type RedisConn } from './redis-conn.ts';
import { decodeEntries, eventId, HOLD_OFF, logKeys, type LogKeys } from './redis-log.ts';
import { LogReader } from './redis-reader.ts';
import { RedisLogSink, stateJsonOf } from './redis-sink.ts';
import type { Supply, Transport } from '../hub/transport.ts';
import type { ListSource } from '../hub/list-source.ts';
import { createRedisListSource } from './redis-lists.ts';

/**
 * How long an opener waits for the cluster to describe a new session (ms):
 * past it the stream opens anyway, with an upstream_error, as it does when
 * the upstream itself is unreachable.
 */
export const CLUSTER_FIRST_CONTACT_WAIT_MS = 15_000;
/** Shown to an instance's readers of a session no instance leads, none of its readers having brought a key (combined mode). */
export const NOBODY_LEADS = 'no instance is reading this session from the upstream: none of its readers brought an upstream API key (open it with one, or set UPSTREAM_API_KEY): waiting for one';
/** How often the instance looks whether Redis has been away long enough to serve its sessions around it (ms). */
export const AWAY_CHECK_MS = 250;
/**
 * Redis away this long (ms), and still away at the next look (a silence judged on a stuck probe connection ends
 * when a PING on the commands' connection is answered: leaders are not stopped for it), a leader stops its loop
 * (its long-poll in flight is abandoned) until Redis answers and its lease is confirmed: before any instance
 * serves a session around Redis (STORE_DOWN_WAIT_MS), so no loop of a leader's that cannot write runs beside one
 * (an upstream call hung since before the outage included).
 */
export const LEADER_PAUSE_AFTER_MS = 1000;
/** Longest wait for the leases to be let go at shutdown (ms). */
export const RELEASE_WAIT_MS = 3000;
/** Beyond a lease after Redis is back, the time a new leader's loop takes to bring the log up to date again (ms). */
export const BACK_SETTLE_SLACK_MS = 2000;

/** What cluster mode needs besides the loops' own settings. */
export interface RedisTransportSettings extends LoopSettings {
  url: string;
  keyPrefix: string;
  leaseMs: number;
  maxEntries: number;
  retentionMs: number;
  stats: Stats;
  observeRedis?: (op: string, seconds: number) => void;
  /**
   * Loops run on callers' accepted keys (AUTH=upstream without UPSTREAM_API_KEY): an instance whose readers of a
   * session brought none (tokens in combined mode, anonymous public Durable readers) does not compete for its lease.
   */
  loopOnCallerCredentials?: boolean;
}

/** Reads events [from, to) from the log when it holds `from` (the contiguous run from there); null when it does not. */
async function historyFromLog(redis: RedisConn, keys: LogKeys, from: number, to: number): Promise<UpstreamEvent[] | null> {
  // Status entries sit between the events: ask for room for them too.
  const count = Math.min(2000, 2 * (to - from) + 16);
  const raw = await redis.call<Array<[string, string[]]>>('history', ['XRANGE', keys.log, eventId(from), eventId(to - 1), 'COUNT', String(count)]);
  const out: UpstreamEvent[] = [];
  for (const e of decodeEntries(raw)) {
    if (e.kind !== 'event') continue;
    if (e.index !== from + out.length) break;
    out.push(e.event);
  }
  return out.length > 0 ? out : null;
}

/** The cluster transport, which also supplies session lists once per cluster. */
export interface RedisTransport extends Transport {
  /** The session lists' source on this transport's connection (transport/redis-lists.ts). */
  listSource(pollMs: number): ListSource;
}

/** Creates the cluster transport; it connects in the background (Redis may be down at start). */
export function createRedisTransport(settings: RedisTransportSettings): RedisTransport {
  const { log, stats } = settings;
  const redis = connectRedis({ url: settings.url, log, stats, ...(settings.observeRedis ? { observe: settings.observeRedis } : {}) });
  const reader = new LogReader(redis, log);
  const instanceId = randomBytes(6).toString('hex');
  // The loops this instance runs, by session: a write made through another instance asks them for `/status`.
  const leading = new Map<string, Set<Poller>>();
  const nudgeChannel = `${settings.keyPrefix}nudge`;
  redis.listen(nudgeChannel, (message) => {
    let nudge: unknown;
    try {
      nudge = JSON.parse(message);
    } catch {
      return;
    }
    if (!Array.isArray(nudge) || nudge[0] === instanceId || typeof nudge[1] !== 'string') return;
    for (const poller of leading.get(nudge[1]) ?? []) void poller.refreshStatus(true);
  });
  const followers = new Set<FeedFollower>();
  const bypasses = new StoreBypasses(log);
  // Redis away (down, or silent) for LEADER_PAUSE_AFTER_MS or more: each supply decides whether to pause its loop,
  // or to serve around Redis (from STORE_DOWN_WAIT_MS on).
  const whenAway = new Set<(awayMs: number, confirmed: boolean) => void>();
  // Looks in a row that found Redis away.
  let awayLooks = 0;
  // Redis answering again: every session served around it goes back to the log at once, before any instance may
  // lead it again (a Redis that restarted holds its leases a few seconds, lease.ts), rather than at its next lease
  // attempt (which may come as another instance starts leading). Its streams pause until a leader writes.
  const whenBack = new Set<() => void>();
  const awayMsNow = () => {
    const since = redis.awaySince;
    return since === null ? 0 : performance.now() - since;
  };
  const awayWatch = setInterval(() => {
    const awayMs = awayMsNow();
    awayLooks = redis.awaySince === null ? 0 : awayLooks + 1;
    if (awayMs >= LEADER_PAUSE_AFTER_MS) for (const fn of whenAway) fn(awayMs, awayLooks >= 2);
    else if (redis.state === 'ok' && bypasses.count('unreachable') > 0) for (const fn of whenBack) fn();
  }, AWAY_CHECK_MS);
  awayWatch.unref();
  const running = new Set<Promise<void>>();
  // A reconnected reader may face a new Redis (restarted empty, failed over): read every log again.
  redis.onReaderReconnect(() => {
    for (const f of followers) f.resync();
  });

  async function history(feed: Feed, from: number, to: number, signal: AbortSignal, source?: Record<string, number>): Promise<UpstreamEvent[] | FailureOutcome> {
    const keys = logKeys(settings.keyPrefix, feed.sessionId, feed.includeEvents);
    const fromLog = await historyFromLog(redis, keys, from, to).catch(() => null);
    if (fromLog) {
      if (source) source.log = (source.log ?? 0) + fromLog.length;
      return fromLog;
    }
    const r = await upstreamHistory(settings, feed, from, to, signal);
    if (source && Array.isArray(r)) source.upstream = (source.upstream ?? 0) + r.length;
    return r;
  }

  const storeState = () => (redis.state !== 'ok' ? redis.state : bypasses.count('full') > 0 ? 'refusing writes (out of memory)' : 'ok');

  return {
    supply(feed: Feed, signal: AbortSignal): Supply {
      const keys = logKeys(settings.keyPrefix, feed.sessionId, feed.includeEvents);
      const stop = new AbortController();
      const onAbort = () => stop.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      let resolveContact!: (c: FirstContact) => void;
      // Whether the openers were answered already (the first contact resolved, whatever it said).
      let contactSettled = false;
      const firstContact = new Promise<FirstContact>((resolve) => (resolveContact = resolve)).finally(() => (contactSettled = true));
      let poller: Poller | null = null;
      // The log of this session has a state: the cluster knows it (see canLead).
      let knownToCluster = false;
      let loopState: PollerState = 'stopped';
      // While Redis cannot carry the session: a loop of this instance's own into the feed (and, Redis
      // being full, no lease wanted for a while).
      let direct: AbortController | null = null;
      let directWhy: Bypass = 'unreachable';
      // A direct loop that stopped on its own (not for the log) is not started again before this (performance.now()
      // ms), nor every time Redis is judged away: ends in a row space the next one out.
      let directNotBefore = 0;
      let directEnds = 0;
      let leadNotBefore = 0;
      // Terms in a row that ended with every credential here refused (see leaveOnRefusal).
      let refusedTerms = 0;
      // Ends the running leader loop (not the lease): see LEADER_PAUSE_AFTER_MS.
      let pauseLoop: AbortController | null = null;
      // What this instance's readers are told while the session's events cannot reach them for want of an upstream
      // key here (tokens in combined mode: see canLead): shown once, taken down when that is over.
      let keylessNotice: string | null = null;
      // Since when no instance has been seen holding the lease, by a keeper that cannot lead (performance.now() ms).
      let unledSince: number | null = null;
      let lastCannotLead = 0;
      const showKeyless = (notice: string | null) => {
        if (feed.ended) return;
        // The feed shows a notice of ours (the log's next update replaces it with the log's own state).
        const ours = keylessNotice !== null && feed.upstreamError === keylessNotice;
        // Taken down only if it is still up; put up unless shown already, or the log shows an upstream error of its own.
        if (notice === null ? !ours : feed.upstreamError === notice || (feed.upstreamError !== null && !ours)) return;
        keylessNotice = notice;
        feed.publish({ fromIndex: feed.nextIndex, events: [], snapshot: feed.snapshot, synced: feed.synced, failing: feed.failing, upstreamError: notice });
      };
      const serveDirectly = (why: Bypass) => {
        if (why === 'full') leadNotBefore = performance.now() + STORE_FULL_RETRY_MS;
        if (direct !== null || stop.signal.aborted || feed.ended || performance.now() < directNotBefore) return;
        // No key here for a session the cluster knows: a loop would call the upstream with none (401s, then the end
        // after the give-up time, for a session that goes on). Its readers wait for the store, and are told why.
        if (!canLead()) return showKeyless(`${BYPASS_STORE[why]}, and no reader on this instance brought an upstream API key to read the session with meanwhile: waiting for the store`);
        const d = new AbortController();
        direct = d;
        directWhy = why;
        // A session the cluster never described is a first contact: a refusal there refuses the open, unless the
        // openers were answered already (a 200 stream told "no answer from the session leader yet"): a 404 then ends
        // the streams, as one process ends a stream opened during an outage. Until 7 Dec 2026 the loop stopped, and
        // started again at each check while Redis was away: a /status call and an error line every 250 ms (an audit).
        const contact = { resumed: isKnown(feed.snapshot) || contactSettled, onFirstContact: resolveContact };
        void bypasses.serve(why, settings, feed, AbortSignal.any([d.signal, stop.signal]), contact).finally(() => {
          if (direct === d) direct = null;
          if (!d.signal.aborted && !stop.signal.aborted && !feed.ended) directNotBefore = performance.now() + backoffDelayMs(++directEnds, DEFAULT_BACKOFF);
          else directEnds = 0;
          check();
        });
      };
      // Back to the log once a leader writes it: for a full Redis only events prove it (small status
      // entries may still land while events do not); for an unreachable one any entry does, or an answer to
      // a lease attempt.
      const logWritten = (withEvents: boolean) => {
        if (direct === null || (directWhy === 'full' && !withEvents)) return;
        direct.abort(LOG_WRITTEN);
        direct = null;
        follower.resync();
      };

      // The feed speaks for the cluster: known (or over) → ok; an upstream error and nothing known → unavailable.
      const check = () => {
        if (feed.ended || isKnown(feed.snapshot)) resolveContact({ kind: 'ok' });
        else if (feed.upstreamError !== null) resolveContact({ kind: 'unavailable', reason: feed.upstreamError });
        if (feed.ended) stop.abort();
      };
      // History older than the log, read with this instance's readers' keys: where they brought none (tokens in
      // combined mode) the upstream refuses it, and a feed that cannot be described here refuses its openers (502,
      // as in one process) rather than holding them on a gap it can never fill.
      const gapFill = async (f: Feed, from: number, to: number, s: AbortSignal) => {
        const r = await history(f, from, to, s, stats.gapFills);
        const keyless = !Array.isArray(r) && r.kind === 'unauthorized' && settings.loopOnCallerCredentials && feed.callers.size === 0;
        if (keyless && !isKnown(feed.snapshot)) resolveContact({ kind: 'unauthorized', status: r.status });
        // A stream open already waits at the gap (the log lost it: Redis restarted empty, or trimmed it while this
        // instance was away) until a reader with a key comes here: told so, not left on a status that looks live.
        else if (keyless) showKeyless(`events ${from}-${to - 1} are missing from the shared log, and no reader on this instance brought an upstream API key to read them again: waiting for one`);
        else if (Array.isArray(r)) showKeyless(null);
        return r;
      };
      const follower = new FeedFollower(
        feed,
        keys,
        { redis, reader, log, fetch: gapFill, onChange: check, onReleased: () => keeper.poke(), onLogWritten: logWritten, canReadUpstream: () => !settings.loopOnCallerCredentials || feed.callers.size > 0 },
        stop.signal,
      );

      // Whether a loop here would have a key to run on: a loop with none would call the upstream with no key and stall
      // every instance's readers on its 401s. A session the cluster does not know yet is tried all the same: its first
      // contact refuses the openers here (502).
      const canLead = () => !settings.loopOnCallerCredentials || feed.callers.size > 0 || !(isKnown(feed.snapshot) || knownToCluster);

      const lead = async (term: LeaderTerm): Promise<TermEnd> => {
        const { meta } = term;
        // The log's position when it has one; else (new, or lost with Redis) this feed's.
        const fromLog = meta.next !== null;
        const sink = new RedisLogSink(
          redis,
          {
            sessionId: feed.sessionId,
            includeEvents: feed.includeEvents,
            nextIndex: fromLog ? meta.next! : feed.nextIndex,
            baseIndex: fromLog ? (meta.base ?? meta.next!) : feed.nextIndex,
            snapshot: meta.state?.snapshot ?? feed.snapshot,
            stateJson: meta.state ? stateJsonOf(meta.state) : '',
          },
          { keys, leaseValue: term.leaseValue, token: term.token, maxEntries: settings.maxEntries, retentionMs: settings.retentionMs, signal: term.signal },
          log,
        );
        // A keyless instance that took the lease of a session the cluster knows (its feed new here, not yet caught up
        // with the log, when it tried) lets it go again at once: a loop here would only get 401s.
        if (settings.loopOnCallerCredentials && feed.callers.size === 0 && isKnown(sink.snapshot)) {
          knownToCluster = true;
          return 'yield';
        }
        let refusedOpen = false;
        // Callers' keys (AUTH=upstream, no UPSTREAM_API_KEY): this loop runs on this instance's readers' keys alone. Once
        // the upstream refused them all it lets the lease go rather than end the session for every instance's readers:
        // another instance's may still read it (see onCannotLead for this instance's own).
        let refusedHere = false;
        // Only where leaving hands the session on: where this instance, keyless now, would not take the lease straight
        // back (canLead false); a session never described is this loop's to retry and end, as in one process, and a
        // key that came back meanwhile (a reader's cached verdict) is tried first.
        const leaveOnRefusal = (): boolean => {
          if (isKnown(sink.snapshot)) knownToCluster = true;
          if (canLead()) return false;
          refusedHere = true;
          return true;
        };
        const paused = new AbortController();
        pauseLoop = paused;
        // A term that begins while Redis is away (its hold ran meanwhile) does not start a loop either.
        if (awayMsNow() >= LEADER_PAUSE_AFTER_MS) paused.abort();
        const loopSignal = AbortSignal.any([term.signal, paused.signal]);
        poller = new Poller(
          {
            // This instance's accepted callers (never written to Redis): see docs/auth-upstream.md for followers.
            client: callerClient(settings.client, feed.callers),
            log,
            waitSeconds: settings.waitSeconds,
            pageSize: settings.pageSize,
            maxBodyBytes: settings.maxBodyBytes,
            backoff: settings.backoff,
            giveUpMs: settings.giveUpMs,
            statusFreshMs: settings.statusFreshMs,
            ...(settings.onEvents ? { onEvents: settings.onEvents } : {}),
            ...(settings.onOversized ? { onOversized: settings.onOversized } : {}),
            sink,
            // This instance's copy of the log saw it going on (the log's own state may say the end already: a leader
            // stopped after hearing it, before its drain; a cluster audit, 7 Dec 2026).
            seenGoingOn: feed.goingOnSnapshot !== null,
            startAtHead: () => feed.startAtHead,
            // A new log written from this copy, which holds the events up to its start: a first answer with nothing new
            // is the session caught up. Until 7 Dec 2026 the leader after an empty Redis restart read the whole history
            // again from 0 (52 calls for a caught-up 5,000-event session, a cluster re-audit).
            startKnown: !fromLog && feed.nextIndex > feed.baseIndex,
            // Known to the cluster already: a refusal is an upstream error to show and retry, not a refused open.
            resumed: isKnown(feed.snapshot) || isKnown(sink.snapshot),
            // A Retry-After binds the cluster's loop, not one leader: kept in the log's meta for the next one.
            holdOffMs: term.holdOffMs,
            onRetryAfter: (ms) => void redis.run('hold-off', HOLD_OFF, [keys.meta], [String(Math.ceil(ms))]).catch(() => undefined),
            // A refused first contact is this instance's to report; the rest reaches the feed through the log.
            onFirstContact: (c) => {
              if (c.kind !== 'not-found' && c.kind !== 'unauthorized') return;
              refusedOpen = true;
              resolveContact(c);
            },
            ...(settings.loopOnCallerCredentials ? { leaveOnRefusal } : {}),
            onState: (s) => (loopState = s),
          },
          loopSignal,
        );
        log.info({ session: feed.sessionId, details: feed.includeEvents, from: sink.nextIndex, fence: term.token }, 'leading the session: loop started');
        const loop = poller;
        const led = leading.get(feed.sessionId) ?? new Set<Poller>();
        leading.set(feed.sessionId, led.add(loop));
        try {
          await loop.run();
        } finally {
          led.delete(loop);
          if (led.size === 0 && leading.get(feed.sessionId) === led) leading.delete(feed.sessionId);
        }
        poller = null;
        pauseLoop = null;
        loopState = 'stopped';
        if (sink.outOfMemory) {
          serveDirectly('full');
          return 'yield';
        }
        if (sink.refused) return 'again';
        // Not back before a backoff, growing while terms keep ending so: a reader's key the upstream revoked, whose
        // verdict pollcast still caches, would otherwise bring the lease back here at once, call after call.
        if (refusedHere) {
          refusedTerms++;
          leadNotBefore = Math.max(leadNotBefore, performance.now() + backoffDelayMs(refusedTerms, settings.backoff));
          return 'yield';
        }
        refusedTerms = 0;
        // Done for good when the session ended, or the open was refused (the hub then stops this supply):
        // then nothing is kept of a session the upstream never confirmed.
        return refusedOpen ? 'unconfirmed' : sink.wroteEnd ? 'done' : 'again';
      };

      const keeper = new LeaseKeeper(
        {
          redis,
          keys,
          sessionId: feed.sessionId,
          instanceId,
          leaseMs: settings.leaseMs,
          maxEntries: settings.maxEntries,
          retentionMs: settings.retentionMs,
          log,
          stats,
          lead,
          notBefore: () => leadNotBefore,
          canLead,
          // No key here to try (and, so, none that could clear a refusal the log shows): this instance's readers get the
          // refusal's `end` once it has lasted the give-up time, as one process's do; readers elsewhere are not touched.
          onCannotLead: (held) => {
            // Nobody has led for a lease's time (every keyed reader gone; not a hand-over, nor a Redis that restarted
            // empty): this instance's readers get nothing new until a reader with a key arrives on some instance;
            // they are told so rather than shown a status that looks live.
            const now = performance.now();
            // Checks not in a row (a key was here meanwhile, and this instance could lead): counted afresh.
            if (now - lastCannotLead > settings.leaseMs) unledSince = null;
            lastCannotLead = now;
            if (held === false) unledSince ??= now;
            else if (held === true) unledSince = null;
            if (unledSince !== null && now - unledSince >= settings.leaseMs && isKnown(feed.snapshot)) showKeyless(NOBODY_LEADS);
            else if (held === true && keylessNotice === NOBODY_LEADS) showKeyless(null);
            if (feed.ended || feed.refusedForMs < settings.giveUpMs) return;
            log.warn({ session: feed.sessionId, reason: feed.upstreamError }, 'upstream refusal lasted past the give-up time and no reader here brought a key it accepts; ending the streams here');
            feed.publish({ fromIndex: feed.nextIndex, events: [], snapshot: feed.snapshot, synced: feed.synced, failing: feed.failing, upstreamError: feed.upstreamError, end: 'refused' });
            check();
          },
          onOutOfMemory: () => serveDirectly('full'),
          // A log other than the one caught up with (replaced), or one now over: read it again.
          onLogSeen: (born, ended) => {
            // Served around an unreachable Redis: one that answers a lease attempt again has (or is about to have)
            // a leader, whose log carries the session from here even while it has nothing new to write.
            if (direct !== null && directWhy === 'unreachable') logWritten(true);
            else if (follower.cursor !== null && ((follower.born !== null && born !== follower.born) || (ended && !feed.ended))) follower.resync();
          },
        },
        stop.signal,
      );

      // Redis away: a leader's loop pauses (LEADER_PAUSE_AFTER_MS); a session the cluster never described here is
      // served around Redis after STORE_DOWN_WAIT_MS rather than held back; one it carries, once a lease taken
      // before Redis went away has run out: a short outage costs a pause, not a loop per instance.
      const onAway = (awayMs: number, confirmed: boolean) => {
        if (confirmed && pauseLoop !== null && !pauseLoop.signal.aborted) {
          log.debug({ session: feed.sessionId, awayMs: Math.round(awayMs) }, 'redis away: leader loop paused until its lease is confirmed');
          pauseLoop.abort();
        }
        if (!feed.ended && awayMs >= (isKnown(feed.snapshot) ? settings.leaseMs : STORE_DOWN_WAIT_MS)) serveDirectly('unreachable');
      };
      whenAway.add(onAway);
      const onBack = () => {
        if (direct !== null && directWhy === 'unreachable') logWritten(true);
        else showKeyless(null);
      };
      whenBack.add(onBack);
      const waitTimer = setTimeout(() => {
        if (isKnown(feed.snapshot) || feed.ended || feed.upstreamError !== null) return;
        const reason = 'no answer from the session leader yet';
        // Shown to the subscribers until the log speaks (it replaces this state on its first update).
        feed.publish({ fromIndex: feed.nextIndex, events: [], snapshot: feed.snapshot, synced: false, failing: feed.failing, upstreamError: reason });
        resolveContact({ kind: 'unavailable', reason });
      }, CLUSTER_FIRST_CONTACT_WAIT_MS);
      waitTimer.unref();

      followers.add(follower);
      follower.resync();
      const done = Promise.all([keeper.run(), follower.stopped()]).finally(() => {
        clearTimeout(waitTimer);
        whenAway.delete(onAway);
        whenBack.delete(onBack);
        followers.delete(follower);
        signal.removeEventListener('abort', onAbort);
        resolveContact({ kind: 'unavailable', reason: 'loop stopped' });
      }).then(() => {});
      running.add(done);
      void done.finally(() => running.delete(done));
      return {
        firstContact,
        done,
        get loopState() {
          return loopState;
        },
        get retryAtMs() {
          return poller?.retryAtMs ?? 0;
        },
        // Only the leader can ask; elsewhere the log's status (the leader's latest) is what there is.
        refreshStatus: (force) => poller?.refreshStatus(force) ?? Promise.resolve(),
      };
    },
    history: (feed, from, to, signal) => history(feed, from, to, signal),
    shared: true,
    nudge(sessionId) {
      // This instance's own loops are refreshed by the hub; a message it gets back from itself is ignored.
      redis.publish(nudgeChannel, JSON.stringify([instanceId, sessionId])).catch(() => undefined);
    },
    listSource: (pollMs) => createRedisListSource({ redis, keyPrefix: settings.keyPrefix, instanceId, pollMs, log }),
    storeState,
    // Once Redis is back (a restarted, empty one included), a leader takes the lease and writes the log again within
    // about a lease: until then an instance that served the session on its own meanwhile may be ahead of this one.
    mayLag: () => storeState() !== 'ok' || (redis.backAt !== null && performance.now() - redis.backAt < settings.leaseMs + BACK_SETTLE_SLACK_MS),
    async close() {
      clearInterval(awayWatch);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(running), new Promise<void>((resolve) => (timer = setTimeout(resolve, RELEASE_WAIT_MS)))]);
      clearTimeout(timer);
      // Closing the connections ends the parked read at once, instead of at the end of its BLOCK.
      const reading = reader.close();
      await redis.close();
      await reading;
    },
  };
}
