/**
 * Just enough of the Dockerfile and .dockerignore grammar to replay an image
 * build without a Docker engine: stages, their instructions (continuations
 * joined, comments dropped), flags, and JSON exec-form arguments.
 */

/** One instruction, e.g. `COPY --from=build /app/dist ./dist`. */
export interface Instruction {
  keyword: string;
  /** `--name=value` flags before the arguments. */
  flags: Record<string, string>;
  /** The arguments: the JSON array when in exec form, else split on whitespace. */
  args: string[];
  /** The text after the keyword and flags, as written. */
  raw: string;
}

/** One `FROM … AS name` stage and what follows it. */
export interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

function parseInstruction(line: string): Instruction {
  const m = /^(\S+)\s*(.*)$/s.exec(line)!;
  const keyword = m[1]!.toUpperCase();
  let rest = m[2]!;
  const flags: Record<string, string> = {};
  // Flags such as --from=build or --mount=type=cache,target=/root/.npm come first.
  for (let f = /^--([a-z-]+)=(\S+)\s*/.exec(rest); f; f = /^--([a-z-]+)=(\S+)\s*/.exec(rest)) {
    flags[f[1]!] = f[2]!;
    rest = rest.slice(f[0].length);
  }
  let args: string[];
  const trimmed = rest.trim();
  if (trimmed.startsWith('[')) args = JSON.parse(trimmed) as string[];
  else args = trimmed.split(/\s+/).filter(Boolean);
  return { keyword, flags, args, raw: trimmed };
}

/** Parses a Dockerfile into stages (the parser directive and comments are dropped). */
export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const physical of text.split(/\r?\n/)) {
    const line = physical.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // comment lines inside a continuation are skipped by Docker too
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  const stages: Stage[] = [];
  for (const line of logical) {
    const ins = parseInstruction(line);
    if (ins.keyword === 'FROM') {
      const asAt = ins.args.findIndex((a) => a.toUpperCase() === 'AS');
      stages.push({ image: ins.args[0]!, name: asAt >= 0 ? ins.args[asAt + 1] : undefined, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile: ${ins.keyword} before the first FROM`);
    stage.instructions.push(ins);
  }
  return stages;
}

/** `ENV A=1 B=2` (and the legacy `ENV A 1`) as key/value pairs. */
export function envPairs(ins: Instruction): Record<string, string> {
  if (ins.args.length === 2 && !ins.args[0]!.includes('=')) return { [ins.args[0]!]: ins.args[1]! };
  return Object.fromEntries(ins.args.map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
}

/** The exec-form arguments of `HEALTHCHECK [options] CMD [...]`. */
export function healthcheckCommand(ins: Instruction): string[] {
  const at = ins.raw.search(/\bCMD\s+\[/);
  if (at < 0) throw new Error('HEALTHCHECK must use CMD in exec form');
  return JSON.parse(ins.raw.slice(at + 3).trim()) as string[];
}

/** True when `.dockerignore` patterns (plain paths and `*` globs, no `!`) exclude `path`. */
export function dockerIgnored(patterns: string[], path: string): boolean {
  const clean = path.replace(/^\.\//, '').replace(/\/$/, '');
  return patterns.some((p) => {
    const re = new RegExp('^' + p.replace(/^\.?\//, '').replace(/\/$/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*') + '(/|$)');
    return re.test(clean);
  });
}

/** The patterns of a `.dockerignore` file. */
export function parseDockerignore(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}
