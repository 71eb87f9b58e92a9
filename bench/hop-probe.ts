/**
 * The upstream hop alone: one long-poll loop per session against the
 * simulator, run the way both servers run theirs (node:http keep-alive, page
 * 100, wait 25 s, details included, the page parsed with JSON.parse), timing
 * each event from its `data.emitted_at_ms` to the moment its page is parsed.
 * Started on the server core in place of a server, it shows how much of a
 * server's delivery latency is the hop before any fan-out.
 *
 *   UPSTREAM_URL=http://127.0.0.1:PORT node bench/hop-probe.ts   (commands of hop-protocol.ts on stdin)
 */
import { createInterface } from 'node:readline';
import { LatencyHistogram } from './latency-histogram.ts';
import { changesText, RETRY_MS } from './naive-long-poll.ts';
import { nowMs } from './sse-counter.ts';
import type { HopCommand, HopStatsReply } from './hop-protocol.ts';


interface Changes {
  new_events: Array<{ data: { emitted_at_ms?: number } | null }>;
}

const histogram = new LatencyHistogram();
const next = new Map<string, number>();
let receivedTotal = 0;
let receivedAtMark = 0;
let failures = 0;
let stopped = false;
let markCpu = process.cpuUsage();
let markWall = performance.now();

async function loop(id: string): Promise<void> {
  while (!stopped) {
    const from = next.get(id)!;
    let r;
    try {
      r = await changesText(id, from);
    } catch {
      failures++;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      continue;
    }
    if (r.status === 204) continue;
    if (r.status !== 200) {
      failures++;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      continue;
    }
    const body = JSON.parse(r.text) as Changes;
    const now = nowMs();
    for (const event of body.new_events) {
      const emitted = event.data?.emitted_at_ms;
      if (typeof emitted === 'number') histogram.record(now - emitted);
    }
    next.set(id, from + body.new_events.length);
    receivedTotal += body.new_events.length;
  }
}

function stats(cmd: Extract<HopCommand, { op: 'stats' }>): HopStatsReply {
  let complete = 0;
  let missing = 0;
  for (const n of next.values()) {
    if (n >= cmd.expect) complete++;
    else missing += cmd.expect - n;
  }
  const cpu = process.cpuUsage(markCpu);
  return {
    seq: cmd.seq,
    receivedWindow: receivedTotal - receivedAtMark,
    complete,
    missing,
    failures,
    histogram: cmd.histogram ? histogram.toJSON() : null,
    cpuUs: cpu.user + cpu.system,
    wallMs: performance.now() - markWall,
  };
}

const reply = (value: object): void => void process.stdout.write(`${JSON.stringify(value)}\n`);

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === '') return;
  const cmd = JSON.parse(line) as HopCommand;
  switch (cmd.op) {
    case 'start':
      for (const id of cmd.sessions) {
        next.set(id, 0);
        void loop(id);
      }
      reply({ seq: cmd.seq, ok: true });
      return;
    case 'mark':
      histogram.reset();
      receivedAtMark = receivedTotal;
      markCpu = process.cpuUsage();
      markWall = performance.now();
      reply({ seq: cmd.seq, ok: true });
      return;
    case 'stats':
      reply(stats(cmd));
      return;
    case 'close':
      stopped = true;
      reply({ seq: cmd.seq, ok: true });
      process.exit(0);
  }
});
// The orchestrator went away: nothing left to report to.
lines.on('close', () => process.exit(0));
