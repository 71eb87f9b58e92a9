/**
 * A pollcast cluster for tests: one real redis-server, one simulator, N real
 * pollcast processes (`node src/cli.ts`) on it, and a client-side load
 * balancer: each subscriber prefers one instance and, when that one is gone,
 * reconnects (with its Last-Event-ID) through the next live one.
 */
import { afterEach } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { CHAOS_ENV } from '../chaos/chaos.ts';
import { startInstance, startInstanceOnFreePort, type Instance } from '../chaos/instance.ts';
import { type Recorder } from '../helpers/harness.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { balancerFetch } from '../helpers/balancer.ts';
import { CLUSTER_LEASE_SECONDS } from '../chaos/deployment.ts';

export { CLUSTER_LEASE_SECONDS, balancerFetch };

/** pollcast's configuration in cluster tests (plus REDIS_URL). */
export const CLUSTER_ENV: Record<string, string> = { ...CHAOS_ENV, REDIS_LEASE_SECONDS: String(CLUSTER_LEASE_SECONDS) };

export interface Cluster {
  redis: RedisServer;
  sim: Simulator;
  /** Instances by slot; null once killed or stopped. */
  instances: Array<Instance | null>;
  env: Record<string, string>;
  /** Base URL of slot `i`'s instance (whether or not it is alive). */
  urlOf(i: number): string;
  /** A fetch that sends each connection to slot `prefer`, or the next live slot. */
  balancer(prefer: number): typeof fetch;
  /** Starts a new instance in a new slot (or slot `i` again). */
  add(i?: number): Promise<number>;
  /** SIGKILLs slot `i`. */
  kill(i: number): Promise<void>;
  /** Slots whose instance holds at least one lease now (from /metrics). */
  leaders(): Promise<number[]>;
  /** A counter or gauge summed over its label sets, from slot `i`'s /metrics. */
  metric(i: number, name: string): Promise<number>;
  close(): Promise<void>;
}

/** What an in-process cluster test starts (pollcast servers in this process on one Redis and one simulator). */
export interface InProcessParts {
  redis?: RedisServer;
  sim?: Simulator;
  servers: PollcastServer[];
  recorders: Recorder[];
}

/** Parts for the tests of one file, stopped after each test: subscribers, servers, the simulator, then Redis. */
export function inProcessParts(): InProcessParts {
  const parts: InProcessParts = { servers: [], recorders: [] };
  afterEach(async () => {
    for (const r of parts.recorders.splice(0)) r.close();
    for (const s of parts.servers.splice(0)) await s.close();
    await parts.sim?.close();
    await parts.redis?.stop();
    parts.sim = parts.redis = undefined;
  });
  return parts;
}

/**
 * Starts pollcast servers in this process on `parts`' Redis and simulator (both started before), with CLUSTER_ENV
 * and `env`; each is stopped after the test.
 */
export function serverStarter(parts: InProcessParts, env: Record<string, string> = {}): () => Promise<PollcastServer> {
  const config = loadConfig({ ...CLUSTER_ENV, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', UPSTREAM_URL: parts.sim!.url, REDIS_URL: parts.redis!.url, ...env });
  return async () => {
    const server = await startPollcast(config, { log: silentLogger(), processMetrics: false });
    parts.servers.push(server);
    return server;
  };
}

/** Sums every sample of `name` in a Prometheus text. */
export function sumMetric(text: string, name: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && /^[a-z_]+(\{|\s)/.test(l) && l.split(/[{\s]/)[0] === name)
    .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
}

/** Starts redis, a simulator and `n` pollcast processes sharing them. */
export async function startCluster(n: number, extraEnv: Record<string, string> = {}): Promise<Cluster> {
  const redis = await startRedis();
  const sim = await createSimulator({});
  const env = { ...CLUSTER_ENV, UPSTREAM_URL: sim.url, REDIS_URL: redis.url, ...extraEnv };
  const ports: number[] = [];
  const instances: Array<Instance | null> = [];
  const start = async (i: number) => {
    if (ports[i] === undefined) ({ instance: instances[i], port: ports[i] } = await startInstanceOnFreePort('process', env));
    else instances[i] = await startInstance('process', ports[i], env);
    return i;
  };
  // One that fails to start stops the others and the rest, or they would outlive the test (CI, 7 Dec 2026: two
  // pollcast processes and a redis-server were left running after a start timed out).
  const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => start(i)));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(instances.map((inst) => inst?.stop().catch(() => {})));
    await sim.close();
    await redis.stop();
    throw failed.reason;
  }
  const urlOf = (i: number) => `http://127.0.0.1:${ports[i]}`;
  const metricsOf = async (i: number) => (await fetch(`${urlOf(i)}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  return {
    redis,
    sim,
    instances,
    env,
    urlOf,
    balancer: (prefer) => balancerFetch(instances, ports, prefer),
    add: (i = instances.length) => start(i),
    async kill(i) {
      const inst = instances[i];
      instances[i] = null;
      await inst?.kill();
    },
    async leaders() {
      const out: number[] = [];
      for (const [i, inst] of instances.entries()) if (inst && sumMetric(await metricsOf(i), 'pollcast_redis_leases_held') > 0) out.push(i);
      return out;
    },
    metric: async (i, name) => sumMetric(await metricsOf(i), name),
    async close() {
      await Promise.all(instances.map((inst) => inst?.stop().catch(() => {})));
      await sim.close();
      await redis.stop();
    },
  };
}
