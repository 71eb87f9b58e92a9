/**
 * The measured window's CPU accounting: the server's CPU (all its processes),
 * redis-server's share, each core's busy time (to see other engineers' load),
 * the simulator's and this orchestrator's own CPU, read at the start and the end.
 */
import { coreTicks, processCpu, ticksToUs } from './processes.ts';

interface Cpu {
  userUs: number;
  sysUs: number;
}

/** Counters at the start of a window. */
export interface WindowStart {
  server: Cpu;
  redis: Cpu | null;
  ticks: Array<{ busy: number; total: number }>;
  sim: Cpu;
  neighbour: Cpu | null;
  self: NodeJS.CpuUsage;
  t0: number;
}

/** What happened between the start and the end of a window. */
export interface WindowFigures {
  windowMs: number;
  serverUserUs: number;
  serverSysUs: number;
  redisCpuUs: number | null;
  serverCoreBusyUs: number | null;
  clientCoreBusyUs: number | null;
  simCpuUs: number;
  selfCpuUs: number;
  /** `--busy-neighbour`: the spinner's CPU, already left out of `serverCoreBusyUs` (null without one). */
  neighbourCpuUs: number | null;
}

/** Who is measured: the server's processes, its redis-server (or null), the simulator, and the two cores. */
export interface WindowSubjects {
  pids: number[];
  redisPid: number | null;
  simPid: number;
  serverCore: number | null;
  clientCore: number | null;
  /** `--busy-neighbour`: the process spinning on the server's core by design; not counted as other load. */
  neighbourPid?: number | null;
}

function sumCpu(pids: number[]): Cpu {
  return pids.map(processCpu).reduce((a, b) => ({ userUs: a.userUs + b.userUs, sysUs: a.sysUs + b.sysUs }), { userUs: 0, sysUs: 0 });
}

const total = (c: Cpu): number => c.userUs + c.sysUs;

/** Reads every counter now. */
export function openWindow(s: WindowSubjects): WindowStart {
  return {
    server: sumCpu(s.pids),
    redis: s.redisPid === null ? null : processCpu(s.redisPid),
    ticks: coreTicks(),
    sim: processCpu(s.simPid),
    neighbour: s.neighbourPid ? processCpu(s.neighbourPid) : null,
    self: process.cpuUsage(),
    t0: performance.now(),
  };
}

/** Reads every counter again and returns the differences. */
export function closeWindow(s: WindowSubjects, start: WindowStart): WindowFigures {
  const windowMs = performance.now() - start.t0;
  const server = sumCpu(s.pids);
  const redis = s.redisPid === null ? null : processCpu(s.redisPid);
  const ticks = coreTicks();
  const sim = processCpu(s.simPid);
  const self = process.cpuUsage(start.self);
  const busyUs = (core: number | null): number | null => (core === null || !start.ticks[core] || !ticks[core] ? null : ticksToUs(ticks[core].busy - start.ticks[core].busy));
  const neighbourCpuUs = s.neighbourPid && start.neighbour ? total(processCpu(s.neighbourPid)) - total(start.neighbour) : null;
  const serverCoreBusyUs = busyUs(s.serverCore);
  return {
    windowMs,
    serverUserUs: server.userUs - start.server.userUs,
    serverSysUs: server.sysUs - start.server.sysUs,
    redisCpuUs: redis && start.redis ? total(redis) - total(start.redis) : null,
    serverCoreBusyUs: serverCoreBusyUs === null ? null : Math.max(0, serverCoreBusyUs - (neighbourCpuUs ?? 0)),
    clientCoreBusyUs: busyUs(s.clientCore),
    simCpuUs: total(sim) - total(start.sim),
    selfCpuUs: self.user + self.system,
    neighbourCpuUs,
  };
}

/** Share of the window a core spent on work that is not ours (null when unpinned). */
export function otherShare(busyUs: number | null, oursUs: number, windowMs: number): number | null {
  return busyUs === null ? null : Math.max(0, (busyUs - oursUs) / 1000 / windowMs);
}
