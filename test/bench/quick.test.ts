/**
 * `npm run bench -- --quick` end to end: every scenario in miniature against
 * both targets. Correctness only (no event lost or repeated, every stream
 * opened); timings depend on the machine and are never asserted here.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Row } from '../../bench/measure.ts';
import { QUICK } from '../../bench/scenarios.ts';

const ROOT = resolve(import.meta.dirname, '../..');
/** The quick run takes well under a minute; this bounds a hung one. */
const RUN_TIMEOUT_MS = 150_000;

function runQuick(): Promise<{ rows: Row[] }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['bench/run.ts', '--quick', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return fail(new Error(`bench exited with ${code}\n${err.slice(-4000)}`));
      try {
        done(JSON.parse(out) as { rows: Row[] });
      } catch (e) {
        fail(new Error(`bench printed no JSON: ${(e as Error).message}\n${out.slice(0, 2000)}\n${err.slice(-4000)}`));
      }
    });
  });
}

describe('bench --quick', () => {
  it(
    'runs every scenario against its targets (pollcast and the baseline; the cluster scenario: one pollcast and three on one Redis) with no event lost or duplicated',
    async () => {
      const { rows } = await runQuick();
      for (const scenario of QUICK) {
        for (const target of scenario.targets ?? ['pollcast', 'baseline']) {
          expect(rows.find((r) => r.scenario === scenario.key && r.target === target), `${scenario.key}/${target}`).toBeDefined();
        }
      }
      for (const r of rows) {
        const label = `${r.scenario}/${r.target}`;
        expect(r.opened, `${label} streams opened`).toBe(r.streams);
        expect(r.lost, `${label} lost`).toBe(0);
        expect(r.duplicated, `${label} duplicated`).toBe(0);
      }
    },
    RUN_TIMEOUT_MS + 10_000,
  );
});
