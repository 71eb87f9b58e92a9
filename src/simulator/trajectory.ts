import { emptyMetrics, round6 } from './generator.ts';
import type { ActiveState, DraftEvent, EventGenerator, ResolvedOutcome } from './generator.ts';
import { intBetween, pick } from './prng.ts';
import type { Rng } from './prng.ts';
import { renderScreenshot } from './screenshot.ts';
import type { RealModelCost } from './types.ts';
import { pickProgress, pickThought, pickToolCall, WEB_TASKS } from './web-tasks.ts';

/** Default approximate length of a screenshot's base64 in `data.image`, in bytes ("a few KB"). */
export const DEFAULT_IMAGE_BYTES = 4_096;
/** Largest screenshot a spec may ask for, in base64 bytes (the biggest canvas, 2048×1280, holds about this much noise). */
export const MAX_IMAGE_BYTES = 2 * 1024 * 1024;
/** Chance that a step carries a message_event (the agent reporting progress). */
const MESSAGE_CHANCE = 0.2;

// USD per million tokens. holo3-122b-a10b's prices reproduce the Agent API docs' example; the other is made up.
const MODELS = [
  { name: 'holo3-35b-a3b', inputPerM: 0.25, outputPerM: 1.8, reasons: false },
  { name: 'holo3-122b-a10b', inputPerM: 0.4, outputPerM: 3, reasons: true },
] as const;

/** Tokens of one policy call: screenshots make the input heavy, the output is a short action. */
const INPUT_TOKENS = [6_000, 14_000] as const;
const OUTPUT_TOKENS = [40, 320] as const;
const REASONING_TOKENS = [0, 400] as const;

/** What the real trajectory needs to know about its session. */
export interface TrajectoryOptions {
  readonly rng: Rng;
  readonly sessionId: string;
  /** Approximate base64 length of each screenshot; 0 leaves `data.image` out. */
  readonly imageBytes: number;
}

function agentEvent(data: Record<string, unknown>): DraftEvent {
  return { type: 'AgentEvent', data };
}

/**
 * The real dialect's trajectory of a web-browsing agent: the start events, then
 * steps of policy_event → tool_result → observation_event (a screenshot) →
 * (sometimes message_event) → MetricsUpdateEvent, then the closing events.
 */
export function createTrajectory({ rng, sessionId, imageBytes }: TrajectoryOptions): EventGenerator {
  const metrics = emptyMetrics<RealModelCost>();
  const reasoning = new Map<string, number>();
  const task = pick(rng, WEB_TASKS);
  const model = pick(rng, MODELS);
  const token = Math.floor(rng() * 2 ** 32).toString(16).padStart(8, '0');
  let step = 0;
  let callSeq = 0;
  let pathIndex = 0;
  const urlOf = (index: number): string => `https://${task.host}${task.paths[Math.min(index, task.paths.length - 1)]}`;

  // Events are queued as thunks: a step is planned at once (its length paces the demo), built when taken.
  const queue: Array<() => DraftEvent> = [
    () => ({ type: 'RequestStartEvent', data: {} }),
    () => ({ type: 'RequestStartDispatchedEvent', data: { status: 'dispatched' } }),
    () => ({ type: 'AgentStartedEvent', data: {} }),
    () => ({ type: 'LiveViewUrlEvent', data: { url: `https://live.example.invalid/sessions/${encodeURIComponent(sessionId)}?token=${token}` } }),
    () => ({ type: 'ActiveStateChangeEvent', data: { state: 'running' } }),
  ];

  function charge(): Record<string, number> {
    const input_tokens = intBetween(rng, INPUT_TOKENS[0], INPUT_TOKENS[1]);
    const output_tokens = intBetween(rng, OUTPUT_TOKENS[0], OUTPUT_TOKENS[1]);
    const reasoning_tokens = model.reasons ? intBetween(rng, REASONING_TOKENS[0], REASONING_TOKENS[1]) : 0;
    const inputCost = (input_tokens * model.inputPerM) / 1e6;
    // Reasoning is billed as output, as model APIs do.
    const outputCost = ((output_tokens + reasoning_tokens) * model.outputPerM) / 1e6;
    let row = metrics.cost_per_model.find((r) => r.name === model.name);
    if (!row) {
      row = { name: model.name, input_tokens: 0, output_tokens: 0, total_cost: 0 };
      metrics.cost_per_model.push(row);
    }
    row.input_tokens += input_tokens;
    row.output_tokens += output_tokens;
    row.total_cost = round6(row.total_cost + inputCost + outputCost);
    reasoning.set(model.name, (reasoning.get(model.name) ?? 0) + reasoning_tokens);
    metrics.input_cost = round6(metrics.input_cost + inputCost);
    metrics.output_cost = round6(metrics.output_cost + outputCost);
    metrics.total_cost = round6(metrics.input_cost + metrics.output_cost);
    return { input_tokens, output_tokens, reasoning_tokens };
  }

  function planStep(): void {
    const n = step + 1;
    const call = pickToolCall(rng, task, urlOf(pathIndex + 1));
    const callId = `call_${++callSeq}`;
    const thought = pickThought(rng);
    const ok = rng() > 0.08;
    const imageSeed = Math.floor(rng() * 2 ** 32);
    const withMessage = rng() < MESSAGE_CHANCE;
    queue.push(
      () => {
        step = n;
        metrics.steps = n;
        const usage = charge();
        return agentEvent({ kind: 'policy_event', step: n, model: model.name, thought, tool_calls: [{ id: callId, name: call.name, args: call.args }], usage });
      },
      () => {
        if (ok && call.name === 'goto') pathIndex++;
        return agentEvent({ kind: 'tool_result', step: n, tool_call_id: callId, name: call.name, ok, output: ok ? call.output : `${call.name} failed: element not interactable` });
      },
      () => {
        const url = urlOf(pathIndex);
        const shot = imageBytes > 0 ? renderScreenshot({ url, color: task.color }, imageSeed, imageBytes) : undefined;
        const image = shot ? { image: shot.base64, image_format: 'png', width: shot.width, height: shot.height } : {};
        return agentEvent({ kind: 'observation_event', step: n, url, title: `${task.title} – ${url.slice(`https://${task.host}`.length) || '/'}`, ...image });
      },
    );
    if (withMessage) queue.push(() => agentEvent({ kind: 'message_event', step: n, role: 'assistant', message: pickProgress(rng) }));
    queue.push(() => ({ type: 'MetricsUpdateEvent', data: { metrics: structuredClone(metrics) } }));
  }

  function next(): DraftEvent {
    if (queue.length === 0) planStep();
    const build = queue.shift() as () => DraftEvent;
    return build();
  }

  function closing(outcome: ResolvedOutcome): DraftEvent[] {
    const answer = outcome.answer === null ? [] : [agentEvent({ kind: 'answer_event', step, answer: outcome.answer })];
    switch (outcome.status) {
      case 'completed':
        return [...answer, { type: 'AgentCompletionEvent', data: { reason: 'finished' } }];
      case 'failed':
        return [
          agentEvent({ kind: 'error_event', step, error: outcome.error }),
          { type: 'AgentErrorEvent', data: { error: outcome.error, trace: `Traceback (simulated): step ${step}: ${outcome.error}`, info: null } },
        ];
      case 'timed_out':
        return [...answer, { type: 'AgentCompletionEvent', data: { reason: 'timed_out' } }];
      case 'interrupted':
        return [{ type: 'AgentCompletionEvent', data: { reason: 'interrupted' } }];
    }
  }

  function stateChange(state: ActiveState): DraftEvent[] {
    switch (state) {
      case 'idle':
        return [
          agentEvent({ kind: 'message_event', step, role: 'assistant', message: 'Done with that part. Tell me what to do next.' }),
          { type: 'ActiveStateChangeEvent', data: { state: 'idle' } },
        ];
      case 'running':
        // Leaving idle takes a new user message (a paused session resumes through the API, with no event).
        return [
          agentEvent({ kind: 'message_event', step, role: 'user', message: 'Thanks, please carry on with the rest.' }),
          { type: 'ActiveStateChangeEvent', data: { state: 'running' } },
        ];
      case 'paused':
        return [];
    }
  }

  return {
    metrics,
    next,
    pendingInStep: () => queue.length,
    closing,
    stateChange,
    defaultAnswer: () => task.answer,
    reasoningTokens: (name) => reasoning.get(name) ?? 0,
  };
}
