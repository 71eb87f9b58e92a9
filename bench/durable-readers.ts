/**
 * Peak RSS of one pollcast process while many `@durable-streams/client` readers read a finished session of
 * ~100 KB events at once with `live: false` (each makes one request; a catch-up answer reads on to the end).
 *
 *   node bench/durable-readers.ts [events=300] [eventBytes=100000] [readers=50] [repo=this checkout]
 *
 * Prints one JSON line: RSS before the readers, peak RSS (VmHWM), wall time, messages and requests per reader.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const [events = '300', imageBytes = '100000', readers = '50', repo = resolve(import.meta.dirname, '..')] = process.argv.slice(2);
const { createSimulator } = (await import(`${repo}/src/simulator/index.ts`)) as typeof import('../src/simulator/index.ts');
const { stream } = await import('@durable-streams/client');

const sim = await createSimulator({ demo: false, api: 'real' });
sim.createSession('big', { initialEvents: Number(events), imageBytes: Number(imageBytes) });
sim.finish('big', { answer: 'done', closingEvents: true });
const port = 18700 + Math.floor(Math.random() * 200);
const child = spawn(process.execPath, [`${repo}/src/cli.ts`], {
  env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'warn', RATE_LIMIT_PER_IP: '0' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const url = `http://127.0.0.1:${port}`;
for (let i = 0; i < 100; i++) {
  if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
  await new Promise((r) => setTimeout(r, 100));
}
const statusKb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
// The loop reads the session once (offset=now), then every reader from the start at once.
await fetch(`${url}/v1/stream/sessions/big?offset=now`);
const one = async () => {
  const items: unknown[] = [];
  let offset = '-1';
  for (let requests = 1; ; requests++) {
    const res = await stream({ url: `${url}/v1/stream/sessions/big`, offset, live: false, json: true });
    items.push(...((await res.json()) as unknown[]));
    if (res.streamClosed) return { items: items.length, requests };
    offset = res.offset;
  }
};
const before = statusKb('VmRSS');
const t0 = performance.now();
const results = await Promise.all(Array.from({ length: Number(readers) }, one));
console.log(JSON.stringify({ events: Number(events), eventBytes: Number(imageBytes), readers: Number(readers), rssBeforeMB: Math.round(before), peakRssMB: Math.round(statusKb('VmHWM')), wallMs: Math.round(performance.now() - t0), messagesPerReader: results[0]!.items, requestsPerReader: results[0]!.requests }));
child.kill('SIGTERM');
await sim.close();
process.exit(0);
