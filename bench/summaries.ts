/**
 * Summaries printed under the table: the cluster's Redis hop, the upstream
 * hop alone, the resume scenarios, the memory of idle streams and how many
 * fit a small Fly machine.
 */
import { fmt, num, pair, ratio } from './report.ts';
import type { Row } from './row.ts';

const KB_PER_MB = 1024;
/** Fly.io `shared-cpu-1x` with 256 MB: the smallest machine pollcast's fly.toml suggests (MB). */
export const FLY_MACHINE_MB = 256;
/**
 * Kept free on that machine (MB): the guest kernel and Fly's init live in the same 256 MB, and socket buffers
 * under load, GC spikes and the sessions' event buffers come on top of idle streams.
 */
export const FLY_HEADROOM_MB = 64;

/**
 * What the Redis hop costs: the cluster scenario's three processes on one
 * redis-server against one pollcast under the same load; null when it did not run.
 */
export function clusterComparison(rows: Row[]): string | null {
  const one = rows.find((r) => r.scenario === 'cluster' && r.target === 'pollcast');
  const three = rows.find((r) => r.scenario === 'cluster' && r.target === 'cluster');
  if (!one || !three) return null;
  const plus = (a: number | null, b: number | null) => (a === null || b === null ? '-' : `${b - a >= 0 ? '+' : ''}${fmt(b - a, 2)}`);
  const redisShare = three.redisCpuMs !== null && three.serverCpuMs > 0 ? ` (redis-server ${fmt((three.redisCpuMs / three.serverCpuMs) * 100, 0)}% of it)` : '';
  return [
    `cluster hop (${three.title}; ${fmt(three.deliveriesPerSec, 0)} deliveries/s):`,
    `  delivery latency p50 ${fmt(one.p50Ms, 2)} ms on one process, ${fmt(three.p50Ms, 2)} ms on the cluster (${plus(one.p50Ms, three.p50Ms)} ms); p99 ${fmt(one.p99Ms, 2)} → ${fmt(three.p99Ms, 2)} ms (${plus(one.p99Ms, three.p99Ms)} ms)`,
    `  CPU per delivery ${fmt(one.cpuUsPerDelivery, 2)} µs on one process, ${fmt(three.cpuUsPerDelivery, 2)} µs for the ${three.serverProcesses - 1} processes and redis-server together${redisShare}: ${fmt(ratio(three.cpuUsPerDelivery, one.cpuUsPerDelivery), 2)}x`,
    `  lost ${three.lost}, duplicated ${three.duplicated}; at most ${three.upstreamMaxInFlight} changes call in flight per session (one loop per session for the cluster)`,
  ].join('\n');
}

/** The upstream hop alone against the servers' delivery latency, per scenario with a hop row. */
export function hopSummary(rows: Row[]): string | null {
  const out: string[] = [];
  for (const hop of rows.filter((r) => r.target === 'hop')) {
    const { pc, bl } = pair(rows, hop.scenario);
    const share = (r: Row | undefined) => (r ? `${r.target} p50 ${fmt(r.p50Ms, 2)} / p99 ${fmt(r.p99Ms, 2)} ms (hop p99 = ${fmt((ratio(hop.p99Ms, r.p99Ms) ?? Number.NaN) * 100, 0)}% of it)` : null);
    out.push(
      `upstream hop alone, ${hop.scenario} (${hop.title}; a probe on the server core long-polls the sessions as both servers do, no streams):`,
      `  emitted_at_ms -> page parsed: p50 ${fmt(hop.p50Ms, 2)} ms, p99 ${fmt(hop.p99Ms, 2)} ms, max ${fmt(hop.maxMs, 1)} ms; CPU ${fmt(hop.cpuUsPerDelivery, 1)} us per event; ${hop.lost} events missing`,
      `  ${[share(pc), share(bl)].filter(Boolean).join('; ')}`,
    );
  }
  return out.length > 0 ? out.join('\n') : null;
}

function resumeLine(r: Row): string {
  const c = r.upstreamCalls;
  const perStream = r.opened > 0 ? r.stale / r.opened : 0;
  return [
    `  ${r.target}: live event p50 ${fmt(r.p50Ms, 1)} / max ${fmt(r.maxMs, 1)} ms after its append; open -> first event after Last-Event-ID p50 ${fmt(r.firstEventP50Ms, 1)} / max ${fmt(r.firstEventMaxMs, 1)} ms`,
    `    upstream: ${c.changes + c.status} calls (${c.changes} changes: ${c.zeroWait} wait-0, ${c.waiting} long-polls; ${c.status} status); ${fmt(perStream, 0)} stale frames per stream; server CPU ${fmt(r.serverCpuMs, 0)} ms; peak RSS ${fmt(num(r.rssPeakKb) / KB_PER_MB, 1)} MB; lost ${r.lost}, dup ${r.duplicated}`,
  ].join('\n');
}

/** What a resume near the end of a history costs each target. */
export function resumeSummary(rows: Row[]): string | null {
  const out: string[] = [];
  for (const key of [...new Set(rows.filter((r) => r.schedule === 'resume').map((r) => r.scenario))]) {
    const mine = rows.filter((r) => r.scenario === key);
    out.push(`${key} (${mine[0]!.title}):`, ...mine.map(resumeLine));
  }
  return out.length > 0 ? out.join('\n') : null;
}

/** Where the memory of idle streams goes (`--memory` runs). */
export function memorySummary(rows: Row[]): string | null {
  const out: string[] = [];
  for (const r of rows.filter((x) => x.memory !== null)) {
    const m = r.memory!;
    out.push(
      `memory per idle stream, ${r.scenario} / ${r.target} (KB): RSS ${fmt(m.rss, 2)} = V8 heap physical ${fmt(m.newSpacePhysical + m.oldSpacesPhysical, 2)} (young generation ${fmt(m.newSpacePhysical, 2)}, old and other spaces ${fmt(m.oldSpacesPhysical, 2)}) + external ${fmt(m.external, 2)} + native rest ${fmt(m.otherNative, 2)}; live heap after a full GC ${fmt(m.heapUsedAfterGc, 2)}; kernel (slab, halved) ${fmt(num(r.kernelKbPerStream), 2)}`,
    );
  }
  return out.length > 0 ? out.join('\n') : null;
}

/** Idle streams that fit the Fly machine, from a target's base RSS and its memory per idle stream. */
export function flyStreams(r: Row): number | null {
  const kernel = Number.isNaN(num(r.kernelKbPerStream)) ? 0 : Math.max(0, r.kernelKbPerStream);
  const perStreamKb = num(r.rssKbPerStream) + kernel;
  const freeMb = FLY_MACHINE_MB - FLY_HEADROOM_MB - num(r.rssIdleKb) / KB_PER_MB;
  if (!(perStreamKb > 0) || Number.isNaN(freeMb)) return null;
  return Math.max(0, Math.floor((freeMb * KB_PER_MB) / perStreamKb));
}

/** The Fly estimate for each target of the idle-sessions scenario (or idle). */
export function flySummary(rows: Row[]): string | null {
  const key = rows.some((r) => r.scenario === 'idle-sessions') ? 'idle-sessions' : 'idle';
  const mine = rows.filter((r) => r.scenario === key && (r.target === 'pollcast' || r.target === 'baseline'));
  if (mine.length === 0) return null;
  const lines = mine.map((r) => {
    const n = flyStreams(r);
    const kernel = Number.isNaN(num(r.kernelKbPerStream)) ? 0 : Math.max(0, r.kernelKbPerStream);
    return `  ${r.target}: (${FLY_MACHINE_MB} - ${FLY_HEADROOM_MB} - ${fmt(r.rssIdleKb / KB_PER_MB, 1)} MB base) x 1024 / (${fmt(r.rssKbPerStream, 2)} KB RSS + ${fmt(kernel, 2)} KB kernel per stream) = ${n ?? '-'} idle streams`;
  });
  return [`idle streams on a Fly shared-cpu-1x with ${FLY_MACHINE_MB} MB (from ${key}; ${FLY_HEADROOM_MB} MB kept free):`, ...lines].join('\n');
}
