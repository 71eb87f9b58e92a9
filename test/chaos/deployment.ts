/**
 * What a chaos run points its subscribers at, and how it is disrupted once
 * mid-run: one pollcast restarted gracefully on the same port (SIGTERM or
 * close()), or a cluster (`--cluster`): N pollcast processes on one real
 * redis-server, whose disruption is a SIGKILL of the busiest leader (a
 * successor starts on its port) followed by Redis stopped and restarted
 * empty. In a cluster each subscriber prefers one instance and reconnects,
 * with its Last-Event-ID, through the next live one (a load balancer).
 */
import { balancerFetch } from '../helpers/balancer.ts';
import { startRedis } from '../helpers/redis.ts';
import { startInstance, startInstanceOnFreePort, type Instance, type InstanceCounters, type InstanceMode } from './instance.ts';

/** The lease of cluster runs (short, so a killed leader is replaced quickly). */
export const CLUSTER_LEASE_SECONDS = 6;
/** How long Redis stays down in a cluster run's disruption (ms). */
export const CHAOS_REDIS_OUTAGE_MS = 2000;

/** A running deployment under chaos. */
export interface Deployment {
  /** Base URL subscriber `n` opens, and the fetch its EventSource connects with (a balancer), if any. */
  route(n: number): { baseUrl: string; fetch?: typeof fetch };
  /** The mid-run disruption; resolves once every instance serves again. */
  disrupt(): Promise<void>;
  /** Counters summed over every instance that ran. */
  counters(): Promise<InstanceCounters>;
  stop(): Promise<void>;
}

const ZERO: InstanceCounters = { streamsOpened: 0, slowDropped: 0, replayFromBuffer: 0, replayFromUpstream: 0, framesDelivered: 0 };
const add = (a: InstanceCounters, b: InstanceCounters): InstanceCounters => ({
  streamsOpened: a.streamsOpened + b.streamsOpened,
  slowDropped: a.slowDropped + b.slowDropped,
  replayFromBuffer: a.replayFromBuffer + b.replayFromBuffer,
  replayFromUpstream: a.replayFromUpstream + b.replayFromUpstream,
  framesDelivered: a.framesDelivered + b.framesDelivered,
});

/** One pollcast, restarted on the same port. */
export async function startSingle(mode: InstanceMode, env: Record<string, string>): Promise<Deployment> {
  const first = await startInstanceOnFreePort(mode, env);
  const port = first.port;
  let instance: Instance = first.instance;
  let past = ZERO;
  return {
    route: () => ({ baseUrl: instance.url }),
    async disrupt() {
      // Graceful stop: streams end, EventSources reconnect (refused until the successor listens).
      await instance.stop();
      past = add(past, await instance.counters());
      instance = await startInstance(mode, port, env);
    },
    counters: async () => add(past, await instance.counters()),
    stop: () => instance.stop(),
  };
}

/** `size` pollcast processes on one fresh redis-server. */
export async function startCluster(size: number, env: Record<string, string>): Promise<Deployment> {
  const redis = await startRedis();
  const full = { REDIS_LEASE_SECONDS: String(CLUSTER_LEASE_SECONDS), ...env, REDIS_URL: redis.url };
  const started = await Promise.all(Array.from({ length: size }, () => startInstanceOnFreePort('process', full)));
  const ports = started.map((s) => s.port);
  const instances: Array<Instance | null> = started.map((s) => s.instance);
  let past = ZERO;
  const leasesOf = async (i: number): Promise<number> => {
    const text = await fetch(`http://127.0.0.1:${ports[i]}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text(), () => '');
    return Number(/^pollcast_redis_leases_held (\d+)/m.exec(text)?.[1] ?? 0);
  };
  return {
    route(n) {
      const prefer = n % size;
      const balancer = balancerFetch(instances, ports, prefer);
      return { baseUrl: `http://127.0.0.1:${ports[prefer]}`, fetch: balancer };
    },
    async disrupt() {
      const leases = await Promise.all(ports.map((_, i) => leasesOf(i)));
      const victim = leases.indexOf(Math.max(...leases));
      const dead = instances[victim]!;
      instances[victim] = null;
      past = add(past, await dead.counters());
      await dead.kill();
      instances[victim] = await startInstance('process', ports[victim]!, full);
      await redis.stop();
      await new Promise((r) => setTimeout(r, CHAOS_REDIS_OUTAGE_MS));
      await redis.start();
    },
    async counters() {
      let sum = past;
      for (const inst of instances) if (inst) sum = add(sum, await inst.counters());
      return sum;
    },
    async stop() {
      // Every instance stopped and Redis too, even when one had died on its own (its stop() says so, after).
      const stopped = await Promise.allSettled(instances.map((inst) => inst?.stop()));
      await redis.stop();
      for (const s of stopped) if (s.status === 'rejected') throw s.reason;
    },
  };
}
