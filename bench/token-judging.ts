/**
 * What judging a forwarded request's JWT-shaped words costs the rest of the server: one pollcast process
 * (`AUTH_JWT_SECRET`, `PASSTHROUGH=true`, 1 MiB of headers allowed) gets one forwarded `GET /api/v2/sessions` whose
 * headers hold `words` distinct HS256-shaped words (each judged: is it a pollcast token?), while `/healthz` is asked
 * every 5 ms; three rounds.
 *
 *   node bench/token-judging.ts [words=12000] [repo=this checkout]
 *
 * Prints one JSON line a round: the forwarded request's time and the longest gap between two `/healthz` answers
 * meanwhile (the event loop held). The simulator refuses headers that large (`431`): the judging, before the
 * forward, is what is measured.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { resolve } from 'node:path';

const [wordsArg = '12000', repo = resolve(import.meta.dirname, '..')] = process.argv.slice(2);
const words = Number(wordsArg);
const { createSimulator } = (await import(`${repo}/src/simulator/index.ts`)) as typeof import('../src/simulator/index.ts');

const sim = await createSimulator({ demo: false, api: 'real' });
const port = 18900 + Math.floor(Math.random() * 90);
const child = spawn(process.execPath, [`${repo}/src/cli.ts`], {
  env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH_JWT_SECRET: 'bench-secret-0123456789abcdef-0123456789', PASSTHROUGH: 'true', MAX_HEADER_BYTES: '1048576', LOG_LEVEL: 'warn', RATE_LIMIT_PER_IP: '0' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const url = `http://127.0.0.1:${port}`;
for (let i = 0; i < 100; i++) {
  if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
  await new Promise((r) => setTimeout(r, 100));
}
// Distinct words of a real HS256 token's shape (header, payload, 43-character signature), 200 to a header line.
const headers: Record<string, string> = {};
const signature = 'A'.repeat(43);
for (let i = 0; i < words; i += 200) {
  const line: string[] = [];
  for (let k = i; k < Math.min(words, i + 200); k++) line.push(`eyJhbGciOiJIUzI1NiJ9.${Buffer.from(`{"i":${k}}`).toString('base64url')}.${signature}`);
  headers[`x-w-${i / 200}`] = line.join(' ');
}
for (let round = 0; round < 3; round++) {
  let done = false;
  let longestGapMs = 0;
  let answers = 0;
  let last = performance.now();
  const poll = (async () => {
    while (!done) {
      await fetch(`${url}/healthz`).then((r) => r.arrayBuffer());
      const now = performance.now();
      longestGapMs = Math.max(longestGapMs, now - last);
      last = now;
      answers++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const started = performance.now();
  const status = await new Promise<number>((resolveStatus, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/v2/sessions', headers }, (res) => {
      res.resume();
      res.on('end', () => resolveStatus(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
  const requestMs = performance.now() - started;
  done = true;
  await poll;
  process.stdout.write(`${JSON.stringify({ words, status, requestMs: Math.round(requestMs), longestHealthzGapMs: Math.round(longestGapMs), healthzAnswers: answers })}\n`);
}
child.kill('SIGTERM');
await sim.close();
