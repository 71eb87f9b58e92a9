import { InvalidInputError } from './errors.ts';
import { mulberry32 } from './prng.ts';
import type { Rng } from './prng.ts';
import type { Fault, FaultController, FaultEndpoint, FaultScope, RandomFaultOptions } from './types.ts';

/** The endpoints a request can hit; a scope's 'any' matches changes and status (the list only when named). */
export type ApiEndpoint = 'changes' | 'status' | 'list';

interface ScriptedFaults {
  readonly session: string | undefined;
  readonly endpoint: FaultEndpoint;
  readonly queue: Fault[];
}

interface RandomRule {
  readonly session: string | undefined;
  readonly endpoint: FaultEndpoint;
  readonly rate: number;
  readonly kinds: Fault[];
  readonly rng: Rng;
}

const ENDPOINTS: readonly FaultEndpoint[] = ['changes', 'status', 'list', 'any'];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requireNumber(fault: Record<string, unknown>, key: string, min: number, integer = false): void {
  const value = fault[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new InvalidInputError(`fault ${String(fault.kind)}: ${key} must be ${integer ? 'an integer' : 'a number'} >= ${min}`);
  }
}

/** Checks one fault (it may come from JSON) and returns a copy of it. */
export function validateFault(value: unknown): Fault {
  if (!isObject(value)) throw new InvalidInputError('a fault must be an object with a kind');
  switch (value.kind) {
    case 'http':
      requireNumber(value, 'status', 100, true);
      if ((value.status as number) > 599) throw new InvalidInputError('fault http: status must be 100..599');
      if (value.message !== undefined && typeof value.message !== 'string') throw new InvalidInputError('fault http: message must be a string');
      break;
    case 'rate-limit':
      requireNumber(value, 'retryAfterSeconds', 0, true);
      break;
    case 'slow-body':
      requireNumber(value, 'chunkDelayMs', 0);
      if (value.chunks !== undefined) requireNumber(value, 'chunks', 2, true);
      break;
    case 'short-limit':
      requireNumber(value, 'max', 0, true);
      break;
    case 'patch':
      if (!isObject(value.body)) throw new InvalidInputError('fault patch: body must be a JSON object');
      break;
    case 'reset':
    case 'hang':
    case 'invalid-json':
    case 'truncated':
    case 'no-change':
      break;
    default:
      throw new InvalidInputError(`unknown fault kind: ${String(value.kind)}`);
  }
  return structuredClone(value) as Fault;
}

function validateScope(scope: FaultScope): { session: string | undefined; endpoint: FaultEndpoint } {
  if (scope.session !== undefined && typeof scope.session !== 'string') throw new InvalidInputError('session must be a string');
  const endpoint = scope.endpoint ?? 'changes';
  if (!ENDPOINTS.includes(endpoint)) throw new InvalidInputError(`endpoint must be one of ${ENDPOINTS.join(', ')}`);
  // The list is no session's: a fault scoped to one would never fire.
  if (endpoint === 'list' && scope.session !== undefined) throw new InvalidInputError('a list fault takes no session');
  return { session: scope.session, endpoint };
}

function matches(rule: { session: string | undefined; endpoint: FaultEndpoint }, session: string, endpoint: ApiEndpoint): boolean {
  return (rule.session === undefined || rule.session === session) && (rule.endpoint === 'any' ? endpoint !== 'list' : rule.endpoint === endpoint);
}

/** The simulator's fault plan: scripted queues first (FIFO, in the order scripted), then seeded random rules. */
export class FaultPlan implements FaultController {
  #scripts: ScriptedFaults[] = [];
  #rules: RandomRule[] = [];

  script(faults: Fault[], scope: FaultScope = {}): void {
    if (!Array.isArray(faults)) throw new InvalidInputError('faults must be an array');
    const queue = faults.map(validateFault);
    if (queue.length > 0) this.#scripts.push({ ...validateScope(scope), queue });
  }

  random(options: RandomFaultOptions): void {
    if (!isObject(options)) throw new InvalidInputError('random fault options must be an object');
    const { seed, rate, kinds } = options;
    if (typeof seed !== 'number' || !Number.isInteger(seed)) throw new InvalidInputError('seed must be an integer');
    if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1)) throw new InvalidInputError('rate must be a number in 0..1');
    if (!Array.isArray(kinds) || kinds.length === 0) throw new InvalidInputError('kinds must be a non-empty array of faults');
    this.#rules.push({ ...validateScope(options), rate, kinds: kinds.map(validateFault), rng: mulberry32(seed) });
  }

  clear(): void {
    this.#scripts = [];
    this.#rules = [];
  }

  pending(): number {
    return this.#scripts.reduce((n, s) => n + s.queue.length, 0);
  }

  /** The fault to serve for this request, if any; consumes scripted faults and advances random rules. */
  take(session: string, endpoint: ApiEndpoint): Fault | undefined {
    const script = this.#scripts.find((s) => matches(s, session, endpoint));
    if (script) {
      const fault = script.queue.shift();
      if (script.queue.length === 0) this.#scripts = this.#scripts.filter((s) => s !== script);
      if (fault) return fault;
    }
    for (const rule of this.#rules) {
      if (!matches(rule, session, endpoint)) continue;
      // Draw both numbers on every matching request so the sequence depends only on the request count.
      const roll = rule.rng();
      const choice = rule.rng();
      if (roll < rule.rate) return rule.kinds[Math.floor(choice * rule.kinds.length)];
    }
    return undefined;
  }
}
