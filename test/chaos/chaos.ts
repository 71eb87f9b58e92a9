/**
 * The seeded chaos scenario (issue 4): several live sessions (and finished
 * ones with a long history) on the simulator, hundreds of real EventSource
 * subscribers that start at random positions, are closed and reopened at
 * random with Last-Event-ID, some leaving for good, seeded random upstream
 * faults, and one pollcast restart on the same port. At the end every
 * subscriber's indices must be exactly the upstream's from its start on.
 *
 * Every random choice comes from PRNGs seeded by `seed` (the schedule is drawn
 * up front, so a run without faults replays the same schedule); only timing,
 * and pollcast's own backoff jitter, vary between two runs of one seed.
 */
import { createSimulator, type Fault } from '../../src/simulator/index.ts';
import { mulberry32, seedFor, type Rng } from '../../src/simulator/prng.ts';
import { LOOP_REQUEST_BURST, LOOP_REQUESTS_PER_SECOND } from '../../src/upstream/backoff.ts';
import { logRequests, maxInWindow, ONE_ADDRESS_ENV, type LoggedRequest } from '../resilience/helpers.ts';
import { startCluster, startSingle } from './deployment.ts';
import { watchLongPolls } from './long-poll-watch.ts';
import type { InstanceCounters, InstanceMode } from './instance.ts';
import { ChaosSubscriber, expectedFirstIndex, type StartMode, type SubscriberPlan, type SubscriberRecord } from './subscriber.ts';

/** Sizes and switches of one run. */
export interface ChaosOptions {
  seed: number;
  /** Sessions emitting during the run. */
  liveSessions: number;
  /** Sessions already finished at the start, with a history of several pages. */
  historySessions: number;
  /** Events each live session emits (range). */
  eventsPerSession: [number, number];
  /** Interval of a live session's batches (range, ms). */
  emitEveryMs: [number, number];
  detailBytes: [number, number];
  subscribers: number;
  /** Subscribers start within this time from the start (ms). */
  startWindowMs: number;
  /** Gap between a subscriber's forced reconnects (range, ms). */
  reconnectEveryMs: [number, number];
  /** Share of subscribers that leave for good before the end. */
  leaveFraction: number;
  /** Seeded random faults on every session's changes and status calls, or none. */
  faultRate: number;
  /** Stop pollcast once mid-run and start a new one on the same port. */
  restart: boolean;
  instanceMode: InstanceMode;
  /** Cluster mode: this many pollcast processes on one redis-server (the restart becomes a leader's SIGKILL and a Redis restart). */
  cluster?: number;
  /** Bound of the whole run (ms). */
  timeoutMs: number;
}

/** The faults drawn at random: every kind the simulator injects. */
export const CHAOS_FAULT_KINDS: Fault[] = [
  { kind: 'http', status: 500 },
  { kind: 'http', status: 502 },
  { kind: 'http', status: 503 },
  { kind: 'http', status: 401 },
  { kind: 'http', status: 403 },
  { kind: 'http', status: 404 },
  { kind: 'rate-limit', retryAfterSeconds: 1 },
  { kind: 'reset' },
  { kind: 'hang' },
  { kind: 'slow-body', chunkDelayMs: 60, chunks: 3 },
  { kind: 'slow-body', chunkDelayMs: 1500, chunks: 3 },
  { kind: 'invalid-json' },
  { kind: 'truncated' },
  { kind: 'no-change' },
  { kind: 'short-limit', max: 3 },
];

/** pollcast's configuration in a chaos run. */
export const CHAOS_ENV: Record<string, string> = {
  ...ONE_ADDRESS_ENV,
  AUTH: 'none',
  UPSTREAM_WAIT_SECONDS: '2',
  UPSTREAM_TIMEOUT_MARGIN_SECONDS: '1',
  // Random refusals are short; only a lasting one may end streams, and none lasts.
  UPSTREAM_GIVE_UP_SECONDS: '60',
  SSE_RETRY_MS: '200',
  IDLE_GRACE_SECONDS: '2',
  HEARTBEAT_SECONDS: '5',
};

/** Per-session upstream figures. */
export interface SessionReport {
  id: string;
  events: number;
  changes: number;
  status: number;
  faultsServed: number;
  maxInFlightChanges: number;
  /** Most long-polls (changes calls with a wait) in flight at once, i.e. loops. */
  maxInFlightLongPolls: number;
  /** Most requests in any 1 s window. */
  maxPerSecond: number;
}

/** What a run did and whether it kept every promise. */
export interface ChaosResult {
  options: ChaosOptions;
  ok: boolean;
  problems: string[];
  durationMs: number;
  /** When the restart began (ms from the start) and how long until the successor listened. */
  restartAtMs: number | null;
  restartGapMs: number | null;
  sessions: SessionReport[];
  upstream: { requests: number; changes: number; status: number; faultsServed: number; maxPerSecond: number };
  subscribers: { total: number; ended: number; left: number; eventsReceived: number; opens: number; forcedReconnects: number; autoReconnects: number; refusedOpens: number; refusedDuringRestart: number; refusedByStatus: Record<string, number> };
  pollcast: InstanceCounters;
}

const between = (rng: Rng, [lo, hi]: [number, number]) => Math.round(lo + rng() * (hi - lo));

interface SessionPlan {
  id: string;
  live: boolean;
  initialEvents: number;
  emitEveryMs: number;
  batchSize: number;
  emitCount: number;
  detailBytes: number;
}

/** Draws sessions, subscribers and the restart time from `seed`, in a fixed order. */
export function planChaos(o: ChaosOptions): { sessions: SessionPlan[]; subscribers: SubscriberPlan[]; restartAtMs: number | null } {
  const rng = mulberry32(o.seed);
  const sessions: SessionPlan[] = [];
  for (let i = 0; i < o.liveSessions + o.historySessions; i++) {
    const live = i < o.liveSessions;
    sessions.push({
      id: `chaos-${o.seed}-${live ? 'live' : 'done'}-${i}`,
      live,
      initialEvents: live ? between(rng, [0, 30]) : between(rng, [120, 260]),
      emitEveryMs: between(rng, o.emitEveryMs),
      batchSize: between(rng, [1, 4]),
      emitCount: between(rng, o.eventsPerSession),
      detailBytes: between(rng, o.detailBytes),
    });
  }
  const subscribers: SubscriberPlan[] = [];
  for (let n = 0; n < o.subscribers; n++) {
    const session = sessions[Math.floor(rng() * sessions.length)]!;
    const roll = rng();
    const index = between(rng, [0, 20]);
    const start: StartMode = roll < 0.5 ? { kind: 'beginning' } : roll < 0.75 ? { kind: 'last-event-id', index } : { kind: 'from-index', index };
    const leaves = rng() < o.leaveFraction;
    const leaveAfterMs = between(rng, [200, 3000]);
    subscribers.push({ n, session: session.id, startAtMs: Math.round(rng() * o.startWindowMs), start, reconnectEveryMs: o.reconnectEveryMs, leaveAfterMs: leaves ? leaveAfterMs : null });
  }
  const shortest = Math.min(...sessions.filter((s) => s.live).map((s) => Math.ceil(s.emitCount / s.batchSize) * s.emitEveryMs));
  const restartAtMs = o.restart ? Math.round((0.3 + 0.3 * rng()) * shortest) : null;
  return { sessions, subscribers, restartAtMs };
}

/** Checks one subscriber's record against the upstream's events; returns the problems found. */
function checkSubscriber(rec: SubscriberRecord, upstream: Array<{ timestamp: string }>): string[] {
  const { plan } = rec;
  const who = `subscriber ${plan.n} (${plan.session}, start ${JSON.stringify(plan.start)})`;
  const first = expectedFirstIndex(plan.start);
  const problems: string[] = [];
  const at = rec.indices.findIndex((x, k) => x !== first + k);
  if (at !== -1) {
    const seen = rec.indices.slice(Math.max(0, at - 2), at + 3).join(',');
    problems.push(`${who}: expected index ${first + at} at position ${at}, got ${rec.indices[at]} (… ${seen} …): ${rec.indices[at]! < first + at ? 'repeat' : 'gap'}`);
  }
  const bad = rec.indices.findIndex((x, k) => upstream[x]?.timestamp !== rec.timestamps[k]);
  if (bad !== -1) problems.push(`${who}: event ${rec.indices[bad]} differs from the upstream's`);
  if (!rec.left) {
    const want = Math.max(0, upstream.length - first);
    if (!rec.ended) problems.push(`${who}: no end (got ${rec.indices.length} of ${want} events)`);
    else if (rec.indices.length !== want) problems.push(`${who}: ended with ${rec.indices.length} of ${want} events`);
    else if (rec.endLastIndex !== (upstream.length > 0 ? upstream.length - 1 : null)) problems.push(`${who}: end.last_index ${rec.endLastIndex}, upstream has ${upstream.length}`);
  } else if (first + rec.indices.length > upstream.length) {
    problems.push(`${who}: got indices beyond the upstream's ${upstream.length}`);
  }
  return problems;
}

/** The requests of the densest 1 s window, as `+ms endpoint[fault]`, for a problem message. */
function describeDensest(reqs: LoggedRequest[], t0: number): string {
  let best = 0;
  let from = 0;
  let lo = 0;
  for (let hi = 0; hi < reqs.length; hi++) {
    while (reqs[hi]!.t - reqs[lo]!.t > 1000) lo++;
    if (hi - lo + 1 > best) {
      best = hi - lo + 1;
      from = lo;
    }
  }
  return reqs
    .slice(from, from + best)
    .map((r) => `+${Math.round(r.t - t0)} ${r.endpoint}${r.fault ? `[${r.fault.kind}]` : ''}`)
    .join(' ');
}

/** Runs one scenario to its end (or its timeout) and reports; never throws for a broken promise, only for a broken harness. */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const plan = planChaos(o);
  const sim = await createSimulator({ seed: o.seed });
  const log = logRequests(sim);
  // The loops' long-polls are watched on their own (see long-poll-watch.ts).
  const watch = await watchLongPolls(sim.url);
  const env = { ...CHAOS_ENV, UPSTREAM_URL: watch.url };
  const deployment = o.cluster ? await startCluster(o.cluster, env) : await startSingle(o.instanceMode, env);
  const problems: string[] = [];
  const started = performance.now();
  const timers: NodeJS.Timeout[] = [];
  const subs: ChaosSubscriber[] = [];
  let restartGapMs: number | null = null;
  // performance.now() when the disruption was over: requests before it are the first loops', after it their successors'.
  let handoverAt = Infinity;
  let restartBeganAt = Infinity;
  let restartDone: Promise<void> = Promise.resolve();
  try {
    for (const s of plan.sessions) {
      if (s.live) sim.createSession(s.id, { initialEvents: s.initialEvents, emitEveryMs: s.emitEveryMs, batchSize: s.batchSize, emitCount: s.emitCount, detailBytes: s.detailBytes });
      else sim.createSession(s.id, { initialEvents: s.initialEvents, finished: true, detailBytes: s.detailBytes });
      if (o.faultRate > 0) sim.faults.random({ session: s.id, endpoint: 'any', seed: seedFor(o.seed, s.id), rate: o.faultRate, kinds: CHAOS_FAULT_KINDS });
    }
    let pending = plan.subscribers.length;
    let allDone!: () => void;
    const done = new Promise<void>((resolve) => (allDone = resolve));
    const onEnded = () => {
      if (--pending === 0) allDone();
    };
    for (const p of plan.subscribers) {
      const sub = new ChaosSubscriber(deployment.route(p.n), p, seedFor(o.seed, `subscriber-${p.n}`), onEnded);
      subs.push(sub);
      timers.push(setTimeout(() => sub.start(), p.startAtMs));
    }
    const restartAtMs = plan.restartAtMs;
    if (restartAtMs !== null) {
      restartDone = new Promise<void>((resolve, reject) => {
        timers.push(
          setTimeout(() => {
            void (async () => {
              const t0 = performance.now();
              restartBeganAt = t0;
              await deployment.disrupt();
              handoverAt = performance.now();
              restartGapMs = Math.round(handoverAt - t0);
            })().then(resolve, reject);
          }, restartAtMs),
        );
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), o.timeoutMs)));
    const outcome = await Promise.race([Promise.all([done, restartDone]).then(() => 'done' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') problems.push(`run did not finish within ${o.timeoutMs} ms: ${subs.filter((s) => s.active).length} subscribers still waiting`);
  } finally {
    for (const t of timers) clearTimeout(t);
    for (const s of subs) s.stop();
  }
  const durationMs = Math.round(performance.now() - started);
  const counters = await deployment.counters();
  await deployment.stop();

  const upstreamEvents = new Map(plan.sessions.map((s) => [s.id, sim.events(s.id)]));
  for (const s of subs) problems.push(...checkSubscriber(s.record, upstreamEvents.get(s.record.plan.session)!));
  const sessions: SessionReport[] = plan.sessions.map((s) => {
    const st = sim.stats(s.id);
    return {
      id: s.id,
      events: upstreamEvents.get(s.id)!.length,
      changes: st.changes,
      status: st.status,
      faultsServed: st.faultsServed,
      maxInFlightChanges: st.maxInFlightChanges,
      maxInFlightLongPolls: watch.maxInFlight(s.id),
      // Per instance: each process has its own loop and rate gate, and the first's is gone when the second starts.
      maxPerSecond: Math.max(...[(r: LoggedRequest) => r.t < handoverAt, (r: LoggedRequest) => r.t >= handoverAt].map((inSegment) => maxInWindow(log.of(s.id).filter(inSegment).map((r) => r.t), 1000))),
    };
  });
  for (const s of sessions) {
    // One loop per session: never two long-polls at once (the restart's old loop is cut before the new one starts).
    // Wait-0 reads may overlap the loop by design: history pages for readers that resume behind the buffer (after a
    // restart the new instance's buffer begins where its loop did; seen in CI), and in a cluster reads of a range the
    // log lost. The loops are the long-polls.
    if (s.maxInFlightLongPolls > 1) problems.push(`${s.id}: ${s.maxInFlightLongPolls} long-polls in flight at once (two loops)`);
    // The rate gate's burst plus a second of its rate, the pages a restarted loop reads back at once, and its first contact.
    // In a cluster a disruption hands the loop over twice (a leader killed, then every lease lost with Redis):
    // two loops' bursts and read-backs may fall in one segment, one after the other.
    // A call after an answer that brought events is not gated (contract section 5, revised): at most one such answer
    // per append of the session's emitter in that second.
    const emitter = plan.sessions.find((p) => p.id === s.id)!;
    const answersWithEvents = emitter.live ? Math.ceil(1000 / emitter.emitEveryMs) + 1 : 0;
    const bound = (LOOP_REQUEST_BURST + LOOP_REQUESTS_PER_SECOND + Math.ceil(s.events / 100) + 1 + answersWithEvents) * (o.cluster ? 2 : 1);
    if (s.maxPerSecond > bound) {
      const segment = log.of(s.id).filter((r) => (r.t < handoverAt) === (maxInWindow(log.of(s.id).filter((q) => q.t < handoverAt).map((q) => q.t), 1000) === s.maxPerSecond));
      problems.push(`${s.id}: ${s.maxPerSecond} upstream requests within 1 s (bound ${bound}): ${describeDensest(segment, started)}`);
    }
  }
  await watch.close();
  await sim.close();
  const recs = subs.map((s) => s.record);
  const total = (f: (r: SubscriberRecord) => number) => recs.reduce((n, r) => n + f(r), 0);
  const sum = (f: (s: SessionReport) => number) => sessions.reduce((n, s) => n + f(s), 0);
  return {
    options: o,
    ok: problems.length === 0,
    problems,
    durationMs,
    restartAtMs: plan.restartAtMs,
    restartGapMs,
    sessions,
    upstream: { requests: sum((s) => s.changes + s.status), changes: sum((s) => s.changes), status: sum((s) => s.status), faultsServed: sum((s) => s.faultsServed), maxPerSecond: Math.max(...sessions.map((s) => s.maxPerSecond)) },
    subscribers: {
      total: recs.length,
      ended: recs.filter((r) => r.ended).length,
      left: recs.filter((r) => r.left).length,
      eventsReceived: total((r) => r.indices.length),
      opens: total((r) => r.opens),
      forcedReconnects: total((r) => r.forcedReconnects),
      autoReconnects: total((r) => r.autoReconnects),
      refusedOpens: total((r) => r.refusedOpens),
      // Refused while the first instance was stopping or the second not yet listening (the rest: faulted first contacts).
      refusedDuringRestart: total((r) => r.refusedAt.filter((t) => t >= restartBeganAt && t <= handoverAt + 200).length),
      refusedByStatus: recs.reduce<Record<string, number>>((acc, r) => {
        for (const [k, n] of Object.entries(r.refusedByStatus)) acc[k] = (acc[k] ?? 0) + n;
        return acc;
      }, {}),
    },
    pollcast: counters,
  };
}

/**
 * The upstream requests a faulted run may make, given the fault-free run of
 * the same seed: each fault costs at most the failed request, its retry, and
 * one more (a 204's status confirmation, the rest of a short page, or the new
 * first contact of a subscriber whose open it refused) → 3 per fault served;
 * the factor covers timing (long-polls that expire, loops that stop in an idle
 * grace and start again), which differs between any two runs.
 */
export function requestBound(faultFree: ChaosResult, faultsServed: number): number {
  return Math.ceil(faultFree.upstream.requests * REQUEST_BOUND_FACTOR) + REQUESTS_PER_FAULT * faultsServed;
}
/** Slack on the fault-free run's request count for timing alone. */
export const REQUEST_BOUND_FACTOR = 1.25;
/** Extra requests one served fault may cost. */
export const REQUESTS_PER_FAULT = 3;

/** The figures of a run as one table row. */
export function summaryRow(label: string, r: ChaosResult): Record<string, string | number> {
  return {
    run: label,
    seconds: Math.round(r.durationMs / 100) / 10,
    sessions: r.sessions.length,
    events: r.sessions.reduce((n, s) => n + s.events, 0),
    subscribers: r.subscribers.total,
    'left early': r.subscribers.left,
    'events received': r.subscribers.eventsReceived,
    'forced reconnects': r.subscribers.forcedReconnects,
    'auto reconnects': r.subscribers.autoReconnects,
    'refused opens (in restart)': `${r.subscribers.refusedOpens} (${r.subscribers.refusedDuringRestart})`,
    'restart gap ms': r.restartGapMs ?? '-',
    'upstream requests': r.upstream.requests,
    'faults served': r.upstream.faultsServed,
    'max req/s/session': r.upstream.maxPerSecond,
    'streams opened': r.pollcast.streamsOpened,
    problems: r.problems.length,
  };
}
