/**
 * The load client, one process of it (the orchestrator starts as many as the
 * file-descriptor limit needs): opens SSE streams on bare sockets
 * (raw-stream.ts), counts every stream's indices and records latency, and
 * reports on request. Speaks the line protocol of client-protocol.ts on
 * stdin/stdout.
 */
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { LatencyHistogram } from './latency-histogram.ts';
import { RawStream } from './raw-stream.ts';
import { nowMs, StreamCounter } from './sse-counter.ts';
import type { AckReply, ClientCommand, OpenCommand, OpenReply, StatsCommand, StatsReply, StreamSpec } from './client-protocol.ts';

/** A connection that never answers is given up after this long (ms). */
const OPEN_TIMEOUT_MS = 30_000;

interface Stream {
  path: string;
  counter: StreamCounter;
  conn: RawStream;
  closed: boolean;
  /** nowMs() when the request was sent. */
  openedAtMs: number;
  /** The stream's open-to-first-event time is in `firstEvent` already. */
  firstRecorded: boolean;
}

const histogram = new LatencyHistogram();
/** Per stream: request sent → first wanted event (a resume's first replayed event). */
const firstEvent = new LatencyHistogram();
const sink = (ms: number): void => histogram.record(ms);
const streams: Stream[] = [];
let receivedTotal = 0;
let receivedAtMark = 0;
/** Body bytes read (every frame: events, status, comments) since `mark`. */
let bytesWindow = 0;
let closedEarly = 0;
let shuttingDown = false;
let markCpu = process.cpuUsage();
let markWall = performance.now();

/** Length of a slice of the busiest-slice reading (ms). */
const SLICE_MS = 100;
// The loop's utilization slice by slice: while the process reads for longer than a slice, the timer
// fires late and its slice covers the whole busy spell (bench/RESULTS.md, issue 21, twelfth round).
let sliceStart = performance.eventLoopUtilization();
let busiestSlice = 0;
setInterval(() => {
  const now = performance.eventLoopUtilization();
  const slice = performance.eventLoopUtilization(now, sliceStart);
  // A slice shorter than SLICE_MS (the first after `mark`) runs on into the next.
  if (slice.idle + slice.active < SLICE_MS) return;
  busiestSlice = Math.max(busiestSlice, slice.utilization);
  sliceStart = now;
}, SLICE_MS).unref();

function countFailure(failures: Record<string, number>, key: string): void {
  failures[key] = (failures[key] ?? 0) + 1;
}

/** Opens one stream; resolves true once its `200` head arrived. */
function openOne(cmd: OpenCommand, spec: StreamSpec, localAddress: string | undefined, failures: Record<string, number>): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (ok: boolean, failure?: string): void => {
      if (settled) return;
      settled = true;
      if (failure !== undefined) countFailure(failures, failure);
      resolve(ok);
    };
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (spec.lastEventId !== undefined) headers['last-event-id'] = String(spec.lastEventId);
    const openedAtMs = nowMs();
    const startIndex = spec.lastEventId === undefined ? 0 : spec.lastEventId + 1;
    const counter = new StreamCounter(sink, { startIndex, latencyFromIndex: spec.latencyFromIndex ?? 0 });
    let stream: Stream | null = null;
    const conn = new RawStream(
      { host: cmd.host, port: cmd.port, path: spec.path, headers, ...(localAddress ? { localAddress } : {}), headTimeoutMs: OPEN_TIMEOUT_MS },
      {
        onHead(status) {
          if (status !== 200) {
            settle(false, `http ${status}`);
            return;
          }
          stream = { path: spec.path, counter, conn, closed: false, openedAtMs, firstRecorded: false };
          streams.push(stream);
          settle(true);
        },
        onBody(chunk) {
          const s = stream!;
          const before = counter.received;
          bytesWindow += chunk.length;
          counter.push(chunk);
          receivedTotal += counter.received - before;
          if (!s.firstRecorded && counter.firstAtMs !== null) {
            s.firstRecorded = true;
            firstEvent.record(counter.firstAtMs - s.openedAtMs);
          }
        },
        onClose(error) {
          if (stream === null) {
            settle(false, error === null ? 'closed before head' : (error.code ?? error.message));
            return;
          }
          if (stream.closed) return;
          stream.closed = true;
          if (!counter.ended && !shuttingDown) closedEarly++;
        },
      },
    );
  });
}

async function open(cmd: OpenCommand): Promise<OpenReply> {
  const started = performance.now();
  const specs: StreamSpec[] = [];
  for (const s of cmd.streams) for (let i = 0; i < s.count; i++) specs.push(s);
  const failures: Record<string, number> = {};
  let opened = 0;
  let nextSpec = 0;
  // One source address: let connect() pick the port. Binding first (localAddress) makes the
  // kernel search the bound-port table on every bind, quadratic over thousands of sockets.
  const addresses = cmd.localAddresses.length > 1 ? cmd.localAddresses : [undefined];
  const runner = async (): Promise<void> => {
    while (nextSpec < specs.length) {
      const k = nextSpec++;
      if (await openOne(cmd, specs[k]!, addresses[k % addresses.length], failures)) opened++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, cmd.concurrency) }, runner));
  return { seq: cmd.seq, opened, failed: specs.length - opened, failures, ms: Math.round(performance.now() - started) };
}

function stats(cmd: StatsCommand): StatsReply {
  let lost = 0;
  let duplicated = 0;
  let stale = 0;
  let complete = 0;
  let ended = 0;
  let open = 0;
  for (const s of streams) {
    const expected = cmd.expect[s.path] ?? 0;
    lost += s.counter.lost(expected);
    duplicated += s.counter.duplicated;
    stale += s.counter.stale;
    if (s.counter.next >= expected) complete++;
    if (s.counter.ended) ended++;
    if (!s.closed) open++;
  }
  const cpu = process.cpuUsage(markCpu);
  return {
    seq: cmd.seq,
    streams: streams.length,
    open,
    closedEarly,
    receivedTotal,
    receivedWindow: receivedTotal - receivedAtMark,
    bytesWindow,
    lost,
    duplicated,
    stale,
    complete,
    ended,
    histogram: cmd.histogram ? histogram.toJSON() : null,
    firstEvent: cmd.histogram ? firstEvent.toJSON() : null,
    cpuUs: cpu.user + cpu.system,
    wallMs: performance.now() - markWall,
    busiestSliceShare: busiestSlice,
  };
}

function reply(value: OpenReply | StatsReply | AckReply): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function handle(cmd: ClientCommand): Promise<void> {
  switch (cmd.op) {
    case 'open':
      reply(await open(cmd));
      return;
    case 'mark':
      histogram.reset();
      firstEvent.reset();
      receivedAtMark = receivedTotal;
      bytesWindow = 0;
      markCpu = process.cpuUsage();
      markWall = performance.now();
      sliceStart = performance.eventLoopUtilization();
      busiestSlice = 0;
      reply({ seq: cmd.seq, ok: true });
      return;
    case 'stats':
      reply(stats(cmd));
      return;
    case 'close':
      shuttingDown = true;
      for (const s of streams) s.conn.destroy();
      reply({ seq: cmd.seq, ok: true });
      process.exit(0);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === '') return;
  void handle(JSON.parse(line) as ClientCommand).catch((err: unknown) => {
    process.stderr.write(`client: ${String(err)}\n`);
    process.exit(1);
  });
});
// The orchestrator went away: nothing left to report to.
lines.on('close', () => process.exit(0));
