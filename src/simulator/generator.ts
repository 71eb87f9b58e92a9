import { intBetween, pick } from './prng.ts';
import type { Rng } from './prng.ts';
import type { AnyMetrics, Metrics, ModelCost, TerminalStatus } from './types.ts';

/** An event before it is stamped with `timestamp` and `emitted_at_ms`. */
export interface DraftEvent {
  type: string;
  data: Record<string, unknown>;
}

/** How a session ended, with defaults filled in (see outcome.ts). */
export interface ResolvedOutcome {
  status: TerminalStatus;
  error: string | null;
  answer: unknown;
}

/** Active states a running session can move between (the terminal ones go through finish). */
export type ActiveState = 'running' | 'idle' | 'paused';

/** Produces one session's events in a realistic order, growing its metrics; one per dialect. */
export interface EventGenerator {
  /** The session's metrics, mutated in place as events are generated. */
  readonly metrics: AnyMetrics;
  /** The next event of the trajectory. */
  next(): DraftEvent;
  /** Events left in the current step after the last next() (0 at a step boundary); paces the demo. */
  pendingInStep(): number;
  /** The events that close a session ending with `outcome`. */
  closing(outcome: ResolvedOutcome): DraftEvent[];
  /** The events that announce a change of active state (none in the simple dialect). */
  stateChange(state: ActiveState): DraftEvent[];
  /** A plausible final answer for this session's task. */
  defaultAnswer(): string;
  /** Reasoning tokens spent so far by the model with this name. */
  reasoningTokens(model: string): number;
}

/** Default approximate size of `data.details`, in bytes. */
export const DEFAULT_DETAIL_BYTES = 200;

// USD per million tokens; rough public list prices, enough to make costs look real.
const MODELS = [
  { model: 'gpt-4.1', inputPerM: 2, outputPerM: 8 },
  { model: 'claude-sonnet-4', inputPerM: 3, outputPerM: 15 },
  { model: 'gpt-4.1-mini', inputPerM: 0.4, outputPerM: 1.6 },
] as const;

const TASKS = [
  'Summarize the open issues labelled "bug" in the billing service',
  'Find the three cheapest flights from Lisbon to Oslo next Friday',
  'Compare the latency of the EU and US API gateways over the last week',
  'Draft a migration plan from Postgres 13 to 16 for the orders database',
  'Collect the licences of every dependency in the web frontend',
  'Reconcile the March invoices against the payments ledger',
];

const TOOLS = [
  { tool: 'web_search', args: (rng: Rng) => ({ query: pick(rng, ['latest release notes', 'pricing table', 'status page incidents']) }) },
  { tool: 'read_file', args: (rng: Rng) => ({ path: pick(rng, ['README.md', 'src/config.yaml', 'docs/runbook.md']) }) },
  { tool: 'run_python', args: (rng: Rng) => ({ code: `print(sum(range(${intBetween(rng, 10, 999)})))` }) },
  { tool: 'http_get', args: (rng: Rng) => ({ url: `https://api.example.com/v1/items?page=${intBetween(rng, 1, 9)}` }) },
  { tool: 'sql_query', args: (rng: Rng) => ({ sql: `SELECT count(*) FROM orders WHERE day = ${intBetween(rng, 1, 28)}` }) },
] as const;

const WORDS = [
  'agent', 'context', 'result', 'checked', 'the', 'next', 'record', 'value', 'because', 'latency',
  'invoice', 'table', 'found', 'matches', 'source', 'plan', 'retry', 'cost', 'summary', 'step',
];

const STEP_CYCLE = ['step_started', 'thought', 'tool_call', 'tool_result', 'message', 'metrics_update', 'step_finished'] as const;

/** Pseudo-prose of about `bytes` characters (ASCII, so characters are bytes). */
export function filler(rng: Rng, bytes: number): string {
  const parts: string[] = [];
  let length = 0;
  while (length < bytes) {
    const word = pick(rng, WORDS);
    parts.push(word);
    length += word.length + 1;
  }
  return parts.join(' ').slice(0, Math.max(0, bytes));
}

/** A zeroed metrics object (either dialect's rows). */
export function emptyMetrics<Row>(): Metrics<Row> {
  return { steps: 0, total_cost: 0, input_cost: 0, output_cost: 0, cost_per_model: [] };
}

/** Rounds a USD amount to a millionth, so sums stay readable. */
export function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

function chargeTokens(metrics: Metrics, rng: Rng, model: (typeof MODELS)[number]): { input_tokens: number; output_tokens: number } {
  const input_tokens = intBetween(rng, 400, 4000);
  const output_tokens = intBetween(rng, 40, 600);
  const inputCost = (input_tokens * model.inputPerM) / 1e6;
  const outputCost = (output_tokens * model.outputPerM) / 1e6;
  let row = metrics.cost_per_model.find((r) => r.model === model.model);
  if (!row) {
    row = { model: model.model, input_tokens: 0, output_tokens: 0, cost: 0 };
    metrics.cost_per_model.push(row);
  }
  row.input_tokens += input_tokens;
  row.output_tokens += output_tokens;
  row.cost = round6(row.cost + inputCost + outputCost);
  metrics.input_cost = round6(metrics.input_cost + inputCost);
  metrics.output_cost = round6(metrics.output_cost + outputCost);
  metrics.total_cost = round6(metrics.input_cost + metrics.output_cost);
  return { input_tokens, output_tokens };
}

/** Creates the simple dialect's event generator of one session (a fixed seven-event step cycle). */
export function createSimpleGenerator(rng: Rng, detailBytes = DEFAULT_DETAIL_BYTES): EventGenerator {
  const metrics = emptyMetrics<ModelCost>();
  const task = pick(rng, TASKS);
  const model = pick(rng, MODELS);
  let phase = 0;
  let step = 0;
  let callSeq = 0;
  let tool: (typeof TOOLS)[number] = TOOLS[0];
  let stepStartedMs = Date.now();

  const details = (extra: Record<string, unknown>) => ({ ...extra, text: filler(rng, detailBytes) });

  function next(): DraftEvent {
    const type = STEP_CYCLE[phase % STEP_CYCLE.length] ?? 'thought';
    phase++;
    switch (type) {
      case 'step_started':
        step++;
        metrics.steps = step;
        stepStartedMs = Date.now();
        return { type, data: { step, goal: step === 1 ? task : filler(rng, 40), details: details({}) } };
      case 'thought': {
        const usage = chargeTokens(metrics, rng, model);
        return { type, data: { step, model: model.model, summary: filler(rng, 48), ...usage, details: details({ reasoning: true }) } };
      }
      case 'tool_call':
        tool = pick(rng, TOOLS);
        callSeq++;
        return { type, data: { step, call_id: `call_${callSeq}`, tool: tool.tool, args: tool.args(rng), details: details({}) } };
      case 'tool_result':
        return {
          type,
          data: { step, call_id: `call_${callSeq}`, tool: tool.tool, ok: rng() > 0.1, duration_ms: intBetween(rng, 20, 2500), details: details({}) },
        };
      case 'message': {
        const usage = chargeTokens(metrics, rng, model);
        return { type, data: { step, role: 'assistant', model: model.model, summary: filler(rng, 64), ...usage, details: details({}) } };
      }
      case 'metrics_update':
        return { type, data: { step, ...structuredClone(metrics), details: details({}) } };
      case 'step_finished':
      default:
        return { type: 'step_finished', data: { step, duration_ms: Date.now() - stepStartedMs, details: details({}) } };
    }
  }

  function defaultAnswer(): string {
    return `Done: ${task.toLowerCase()}. ${filler(rng, 80)}.`;
  }

  function closing(outcome: ResolvedOutcome): DraftEvent[] {
    if (outcome.status !== 'completed') return [{ type: 'error', data: { step, error: outcome.error, details: details({}) } }];
    return [{ type: 'answer', data: { step, answer: outcome.answer ?? defaultAnswer(), details: details({}) } }];
  }

  return { metrics, next, pendingInStep: () => 0, closing, stateChange: () => [], defaultAnswer, reasoningTokens: () => 0 };
}

/** The `include_details=false` view of an event's data: everything but `details`. */
export function withoutDetails(data: Record<string, unknown>): Record<string, unknown> {
  const { details: _dropped, ...summary } = data;
  return summary;
}
