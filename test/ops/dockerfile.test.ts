/**
 * The image, checked without a Docker engine: the Dockerfile is parsed, its
 * static promises checked, then its two stages are replayed in temp dirs
 * (the same COPY lines, the same RUN lines, the same ENV and CMD) and the
 * result must start, pass its own HEALTHCHECK, stream, and stop on its
 * STOPSIGNAL within the contract's 10 s.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { dockerIgnored, envPairs, healthcheckCommand, parseDockerfile, parseDockerignore, type Instruction, type Stage } from '../helpers/dockerfile.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const ignorePatterns = parseDockerignore(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));
const buildStage = stages.find((s) => s.name === 'build');
const runtime = stages.at(-1)!;
const only = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
const last = (stage: Stage, keyword: string) => only(stage, keyword).at(-1);
/** The image's WORKDIR; every absolute path in the Dockerfile is expected under it. */
const WORKDIR = '/app';

describe('Dockerfile (static)', () => {
  it('is a multi-stage build on node:24-slim with a build stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.image).toBe('node:24-slim');
    expect(buildStage, 'a stage named "build"').toBeDefined();
    expect(only(buildStage!, 'RUN').map((r) => r.raw).join('\n')).toMatch(/npm ci\b[\s\S]*npm run build/);
    for (const s of stages) expect(last(s, 'WORKDIR')?.args[0]).toBe(WORKDIR);
  });

  it('copies only sources that exist and that .dockerignore lets into the context', () => {
    for (const s of stages) {
      for (const copy of only(s, 'COPY')) {
        if (copy.flags.from !== undefined) {
          expect(stages.slice(0, stages.indexOf(s)).map((x) => x.name), `COPY --from=${copy.flags.from}`).toContain(copy.flags.from);
          continue;
        }
        for (const src of copy.args.slice(0, -1)) {
          expect(existsSync(join(ROOT, src)), `COPY source ${src}`).toBe(true);
          expect(dockerIgnored(ignorePatterns, src), `COPY source ${src} is excluded by .dockerignore`).toBe(false);
        }
      }
    }
    for (const p of ['node_modules', 'dist', '.git', 'test/artifacts', '.env']) expect(dockerIgnored(ignorePatterns, p), `.dockerignore should exclude ${p}`).toBe(true);
  });

  it('runs as a non-root user with production settings, a health check and SIGTERM', () => {
    const env = Object.assign({}, ...only(runtime, 'ENV').map(envPairs)) as Record<string, string>;
    expect(env).toMatchObject({ NODE_ENV: 'production', PORT: '8080' });
    expect(only(runtime, 'EXPOSE').flatMap((e) => e.args)).toContain('8080');
    const user = last(runtime, 'USER')?.args[0];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(last(runtime, 'STOPSIGNAL')?.args[0]).toBe('SIGTERM');
    expect(last(runtime, 'CMD')?.args).toEqual(['node', 'dist/cli.js']);
    const probe = healthcheckCommand(last(runtime, 'HEALTHCHECK')!);
    expect(probe[0]).toBe('node');
    expect(probe.join(' ')).toContain('/healthz');
    expect(only(runtime, 'RUN').map((r) => r.raw).join('\n')).toContain('npm ci --omit=dev --ignore-scripts');
    // Dev tooling and sources stay in the build stage.
    expect(only(runtime, 'COPY').flatMap((c) => c.args)).not.toContain('src');
  });
});

/** A port that was free a moment ago (the image listens on PORT; 0 would hide the port from the health check). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Maps an image path (absolute under WORKDIR, or relative to it) to the temp dir standing in for WORKDIR. */
function hostPath(dir: string, imagePath: string): string {
  return imagePath.startsWith('/') ? join(dir, relative(WORKDIR, imagePath)) : join(dir, imagePath);
}

/** Docker's COPY: a directory's contents go to the destination, files into it when it ends with `/`. */
function copy(ins: Instruction, dir: string, fromDir: string): void {
  const sources = ins.args.slice(0, -1);
  const dest = ins.args.at(-1)!;
  for (const src of sources) {
    const from = ins.flags.from === undefined ? join(ROOT, src) : hostPath(fromDir, src);
    const into = statSync(from).isDirectory() || !(dest.endsWith('/') || sources.length > 1) ? hostPath(dir, dest) : join(hostPath(dir, dest), basename(src));
    cpSync(from, into, { recursive: true, filter: (p) => ins.flags.from !== undefined || !dockerIgnored(ignorePatterns, relative(ROOT, p)) });
  }
}

const exec = (cmd: string, cwd: string, env: Record<string, string>) => run('sh', ['-c', cmd], { cwd, env: { ...process.env, ...env }, timeout: 120_000 });

describe('Dockerfile (replayed without Docker)', () => {
  let buildDir = '';
  let appDir = '';
  let child: ChildProcess | undefined;
  let port = 0;
  const output: string[] = [];
  let imageEnv: Record<string, string> = {};

  beforeAll(async () => {
    buildDir = mkdtempSync(join(tmpdir(), 'pollcast-build-'));
    appDir = mkdtempSync(join(tmpdir(), 'pollcast-image-'));
    for (const ins of buildStage!.instructions) {
      if (ins.keyword === 'COPY') copy(ins, buildDir, buildDir);
      if (ins.keyword !== 'RUN') continue;
      // The build stage's `npm ci` installs this very lockfile with dev dependencies: the
      // repository's node_modules is that install already, so it is linked rather than redone.
      if (/^npm ci\b/.test(ins.raw)) symlinkSync(join(ROOT, 'node_modules'), join(buildDir, 'node_modules'), 'dir');
      else await exec(ins.raw, buildDir, {});
    }
    for (const ins of runtime.instructions) {
      if (ins.keyword === 'ENV') imageEnv = { ...imageEnv, ...envPairs(ins) };
      if (ins.keyword === 'COPY') copy(ins, appDir, buildDir);
      if (ins.keyword === 'RUN') await exec(ins.raw, appDir, imageEnv);
    }
    port = await freePort();
    const [cmd, ...args] = last(runtime, 'CMD')!.args;
    // A container's environment: the image's ENV, not the test runner's.
    child = spawn(cmd!, args, { cwd: appDir, env: { PATH: process.env.PATH ?? '', HOME: appDir, ...imageEnv, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => output.push(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => output.push(d));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "pollcast listening" line within 20 s; output:\n${output.join('')}`)), 20_000);
      const check = () => {
        if (!output.join('').includes('pollcast listening')) return;
        clearTimeout(timer);
        resolve();
      };
      child!.stdout!.on('data', check);
      child!.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited with ${code} before listening; output:\n${output.join('')}`));
      });
      check();
    });
  }, 180_000);

  afterAll(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const d of [buildDir, appDir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('holds production dependencies only, and the command file the build produced', () => {
    expect(existsSync(join(appDir, last(runtime, 'CMD')!.args[1]!))).toBe(true);
    expect(existsSync(join(appDir, 'node_modules', 'pino'))).toBe(true);
    for (const dev of ['typescript', 'vitest', 'playwright-core']) expect(existsSync(join(appDir, 'node_modules', dev)), dev).toBe(false);
    expect(existsSync(join(appDir, 'src'))).toBe(false);
  });

  it('logs JSON (no TTY) and announces the demo and its port', () => {
    const lines = output.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; url?: string });
    const listening = lines.find((l) => l.msg.startsWith('pollcast listening'));
    expect(listening?.url).toBe(`http://127.0.0.1:${port}`);
    expect(lines.some((l) => l.msg.startsWith('DEMO MODE'))).toBe(true);
  });

  it('passes its own HEALTHCHECK and answers /healthz', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
    expect(res.status).toBe(200);
    const [cmd, ...args] = healthcheckCommand(last(runtime, 'HEALTHCHECK')!);
    const probe = await run(cmd!, args, { env: { PATH: process.env.PATH ?? '', ...imageEnv, PORT: String(port) }, timeout: 10_000 }).then(() => 0, (e: { code?: number }) => e.code ?? 1);
    expect(probe).toBe(0);
  });

  it('streams /sessions/demo-1/events', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/sessions/demo-1/events`, { signal: AbortSignal.timeout(15_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!/^id: 0$/m.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    await reader.cancel();
    expect(text).toMatch(/^retry: \d+$/m);
    expect(text).toContain('event: status');
    expect(text).toMatch(/^id: 0\ndata: \{"index":0,/m);
  });

  it('stops on its STOPSIGNAL with exit code 0 within 10 s', async () => {
    const signal = last(runtime, 'STOPSIGNAL')!.args[0] as NodeJS.Signals;
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child!.kill(signal);
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running after 10 s'), 10_000).unref())]);
    expect(code).toBe(0);
  }, 15_000);
});

describe('runtime flags', () => {
  it('npm start, the Dockerfile and the benchmark run pollcast with the same Node flags (src/runtime-flags.ts), the benchmark both servers', async () => {
    const { NODE_FLAGS } = await import('../../src/runtime-flags.ts');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    // `exec`: npm's SIGTERM reaches node itself (test/ops/npm-start.test.ts).
    expect(pkg.scripts.start).toBe(`exec node ${NODE_FLAGS.join(' ')} dist/cli.js`);
    const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
    expect(dockerfile).toContain(`ENV NODE_OPTIONS="${NODE_FLAGS.join(' ')}"`);
    const targets = readFileSync(new URL('../../bench/targets.ts', import.meta.url), 'utf8');
    expect(targets).toMatch(/const SERVER_FLAGS: readonly string\[\] = \[\.\.\.NODE_FLAGS, \.\.\.V8_RUNTIME_FLAGS\];/);
    expect(targets).toMatch(/\[\.\.\.SERVER_FLAGS, \.\.\.nodeArgs\]/);
    expect(targets).not.toMatch(/\[\.\.\.NODE_FLAGS, \.\.\.nodeArgs\]/);
  });
});
