/**
 * pollcast's memory across reconnect storms: a finished session of 3,000 events (~2 KB each), then `rounds` storms
 * of 300 EventSources resuming (Last-Event-ID) at spread points behind the buffer, each read to the end; RSS, V8 heap
 * used and total, and external memory from pollcast's /metrics after each storm and after a rest. It tells memory
 * the code holds (heap used) from what V8 and the allocator keep once used (RSS, heap total).
 *
 *   node bench/storm-memory.ts [rounds=3] [restSeconds=45]
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { EventSource } from 'eventsource';
import { NODE_FLAGS } from '../src/runtime-flags.ts';
import { createSimulator } from '../src/simulator/index.ts';

const [rounds = '3', restSeconds = '45'] = process.argv.slice(2);
const freePort = () =>
  new Promise<number>((done) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });

const sim = await createSimulator({ api: 'real' });
sim.createSession('big', { initialEvents: 3000, imageBytes: 2000 });
sim.finish('big', { answer: 'done' });
const port = await freePort();
// Started as `npm start` starts it (its Node flags).
const child = spawn(process.execPath, [...NODE_FLAGS, resolve(import.meta.dirname, '../src/cli.ts')], {
  env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'none', LOG_LEVEL: 'error', MAX_STREAMS_PER_IP: '5000' },
  stdio: ['ignore', 'inherit', 'inherit'],
});
const base = `http://127.0.0.1:${port}`;
while (!(await fetch(`${base}/healthz`).then((r) => r.ok, () => false))) await new Promise((r) => setTimeout(r, 100));

const rows: Array<Record<string, string | number>> = [];
async function sample(when: string): Promise<void> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const mb = (name: string) => Math.round(Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) / 1048576);
  rows.push({ when, 'RSS MB': mb('pollcast_process_resident_memory_bytes'), 'heap used MB': mb('pollcast_nodejs_heap_size_used_bytes'), 'heap total MB': mb('pollcast_nodejs_heap_size_total_bytes'), 'external MB': mb('pollcast_nodejs_external_memory_bytes') });
}

/** `n` readers, each from its own point, read to `end`; resolves with the events they got. */
async function storm(n: number): Promise<number> {
  let events = 0;
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      new Promise<void>((done) => {
        const from = String((i * 7919) % 2900);
        const es = new EventSource(`${base}/sessions/big/events`, { fetch: (url, init) => fetch(url, { ...init, headers: { ...(init?.headers as Record<string, string>), 'last-event-id': from } }) });
        const timer = setTimeout(() => stop(), 60_000);
        const stop = () => (clearTimeout(timer), es.close(), done());
        es.onmessage = () => void events++;
        es.addEventListener('end', stop);
      }),
    ),
  );
  return events;
}

await sample('start');
for (let round = 1; round <= Number(rounds); round++) {
  const events = await storm(300);
  await sample(`after storm ${round} (${events} events)`);
}
await new Promise((r) => setTimeout(r, Number(restSeconds) * 1000));
await sample(`${restSeconds} s later`);
console.table(rows);
child.kill('SIGTERM');
await sim.close();
