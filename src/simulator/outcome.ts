import { InvalidInputError } from './errors.ts';
import type { ResolvedOutcome } from './generator.ts';
import type { FinishOutcome, TerminalStatus } from './types.ts';

/** Statuses after which a session never changes again (CONTRACT §1). */
export const TERMINAL_STATUSES: readonly TerminalStatus[] = ['completed', 'failed', 'timed_out', 'interrupted'];

/** Statuses the real dialect lets setStatus choose: before the end, and not through finish. */
export const ACTIVE_STATUSES = ['pending', 'running', 'idle', 'paused'] as const;

/** The error a session reports when finish names a status but no error. */
const DEFAULT_ERRORS: Record<Exclude<TerminalStatus, 'completed'>, string> = {
  failed: 'the agent failed (simulated)',
  timed_out: 'the session exceeded its maximum time (simulated)',
  interrupted: 'the session was cancelled (simulated)',
};

/**
 * Checks a finish outcome (it may come from JSON) and fills in its defaults:
 * status 'completed' unless an error says 'failed'; an answer only where the
 * Agent API can give one (completed, and possibly timed_out).
 */
export function resolveOutcome(outcome: FinishOutcome, defaultAnswer: () => unknown): ResolvedOutcome {
  if (typeof outcome !== 'object' || outcome === null) throw new InvalidInputError('outcome must be an object');
  const { status: given, error, answer, closingEvents } = outcome;
  if (closingEvents !== undefined && typeof closingEvents !== 'boolean') throw new InvalidInputError('closingEvents must be a boolean');
  if (given !== undefined && !TERMINAL_STATUSES.includes(given)) throw new InvalidInputError(`status must be one of ${TERMINAL_STATUSES.join(', ')}`);
  if (error !== undefined && typeof error !== 'string') throw new InvalidInputError('error must be a string');
  const status: TerminalStatus = given ?? (error !== undefined ? 'failed' : 'completed');
  if (status === 'completed') {
    if (error !== undefined) throw new InvalidInputError('a completed session has no error');
    return { status, error: null, answer: answer ?? defaultAnswer() };
  }
  if (answer !== undefined && status !== 'timed_out') throw new InvalidInputError(`a ${status} session has no answer`);
  return { status, error: error ?? DEFAULT_ERRORS[status], answer: answer ?? null };
}
