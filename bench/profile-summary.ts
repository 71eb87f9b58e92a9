/**
 * Top self-time functions of a `--cpu-prof` profile, grouped by function and
 * file, with (program), (garbage collector) and (idle) shown apart.
 *
 *   node bench/profile-summary.ts bench/profiles/pollcast-….cpuprofile [top=25]
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The repository's root as a file URL prefix, stripped from frame URLs (whichever worktree ran the profile). */
const ROOT_URL = `${pathToFileURL(resolve(import.meta.dirname, '..')).href}/`;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Self time per function (µs), largest first. */
export function selfTimes(profile: Profile): Array<{ name: string; where: string; us: number }> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, { name: string; where: string; us: number }>();
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = (url.startsWith(ROOT_URL) ? url.slice(ROOT_URL.length) : url).replace(/^file:\/\//, '').replace(/^.*node_modules\//, 'node_modules/');
    const where = file === '' ? '' : `${file}:${lineNumber + 1}`;
    const key = `${functionName}@${where}`;
    const entry = totals.get(key) ?? { name: functionName || '(anonymous)', where, us: 0 };
    entry.us += profile.timeDeltas[i] ?? 0;
    totals.set(key, entry);
  }
  return [...totals.values()].sort((a, b) => b.us - a.us);
}

if (import.meta.main) {
  const [path, topArg] = process.argv.slice(2);
  if (!path) {
    process.stderr.write('usage: node bench/profile-summary.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const rows = selfTimes(profile);
  const total = rows.reduce((n, r) => n + r.us, 0);
  const busy = rows.filter((r) => r.name !== '(idle)').reduce((n, r) => n + r.us, 0);
  process.stdout.write(`profile ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, sampled ${(total / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)} s\n`);
  process.stdout.write('self ms   % busy  function  (file:line)\n');
  for (const r of rows.filter((x) => x.name !== '(idle)').slice(0, Number(topArg ?? 25))) {
    process.stdout.write(`${(r.us / 1000).toFixed(1).padStart(8)}  ${((r.us / busy) * 100).toFixed(1).padStart(5)}%  ${r.name}  ${r.where}\n`);
  }
}
