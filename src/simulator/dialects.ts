import { InvalidInputError } from './errors.ts';
import { createSimpleGenerator, withoutDetails } from './generator.ts';
import type { EventGenerator } from './generator.ts';
import { ACTIVE_STATUSES } from './outcome.ts';
import { mulberry32, seedFor } from './prng.ts';
import type { NormalizedSpec } from './spec.ts';
import type { ChangeReason, SessionRecord } from './record.ts';
import { createTrajectory } from './trajectory.ts';
import type { ApiDialectName, ModelCost, RealModelCost, RealSessionStatus, RealWireEvent, SessionEvent, SessionSnapshot, AnyMetrics } from './types.ts';

/** Everything the two dialects do differently; the store and the HTTP handlers ask, never branch on the name. */
export interface ApiDialect {
  readonly name: ApiDialectName;
  /** Path of the sessions API below the origin ('' = the root). */
  readonly basePath: string;
  /** Status of a created session until its first event. */
  readonly initialStatus: string;
  /** The event generator of a new session, seeded from the simulator's seed and the session id. */
  createGenerator(seed: number, id: string, spec: NormalizedSpec): EventGenerator;
  /** The 200 body of `/status`. */
  statusBody(record: SessionRecord, snapshot: SessionSnapshot<AnyMetrics>): object;
  /** An event as `new_events` carries it with this include_events value. */
  eventView(event: SessionEvent, includeEvents: boolean): SessionEvent | RealWireEvent;
  /** What a changes call for a finished session with nothing past from_index gets: 200 with no events, or 204. */
  readonly emptyAnswerAfterEnd: 200 | 204;
  /** Whether this change answers a held long-poll now (otherwise it keeps waiting for events or its timeout). */
  releasesHeldPoll(reason: ChangeReason): boolean;
  /** Throws InvalidInputError if setStatus may not move `record` to `status`. */
  checkStatusChange(record: SessionRecord, status: string): void;
}

/** The Agent API's base path (CONTRACT §1: `https://agp.eu.hcompany.ai/api/v2`). */
export const REAL_BASE_PATH = '/api/v2';

const rngFor = (seed: number, id: string) => mulberry32(seedFor(seed, id));

/** The simplified upstream pollcast started with: root paths, 200 after the end, any status change releases a poll. */
export const simpleDialect: ApiDialect = {
  name: 'simple',
  basePath: '',
  initialStatus: 'queued',
  createGenerator: (seed, id, spec) => createSimpleGenerator(rngFor(seed, id), spec.detailBytes),
  statusBody: (_record, snapshot) => snapshot,
  eventView: (event, includeEvents) => (includeEvents ? event : { ...event, data: withoutDetails(event.data) }),
  emptyAnswerAfterEnd: 200,
  releasesHeldPoll: () => true,
  checkStatusChange: () => {},
};

function modelName(row: ModelCost | RealModelCost): string {
  return 'name' in row ? row.name : row.model;
}

/** H Company's Agent API as it really behaves (CONTRACT §1). */
export const realDialect: ApiDialect = {
  name: 'real',
  basePath: REAL_BASE_PATH,
  initialStatus: 'pending',
  createGenerator: (seed, id, spec) => createTrajectory({ rng: rngFor(seed, id), sessionId: id, imageBytes: spec.imageBytes }),
  statusBody(record, snapshot): RealSessionStatus {
    return {
      status: snapshot.status,
      error: snapshot.error,
      steps: snapshot.metrics.steps,
      usage_per_model: snapshot.metrics.cost_per_model.map((row) => ({
        name: modelName(row),
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        reasoning_tokens: record.generator.reasoningTokens(modelName(row)),
      })),
      // The simulator runs no subagents.
      subagent_session_ids: [],
    };
  },
  eventView: (event, includeEvents) => (includeEvents ? event : { type: event.type, data: null, timestamp: event.timestamp }),
  emptyAnswerAfterEnd: 204,
  // Only new events answer a held poll: a status change alone (finish included) leaves it to time out with 204.
  releasesHeldPoll: (reason) => reason !== 'status' && reason !== 'finished',
  checkStatusChange(record, status) {
    if (record.finishedAt !== null) throw new InvalidInputError(`session already finished: ${record.id}`);
    if (!(ACTIVE_STATUSES as readonly string[]).includes(status)) {
      throw new InvalidInputError(`status must be one of ${ACTIVE_STATUSES.join(', ')} (finish ends a session)`);
    }
  },
};

/** The dialect of a name; throws InvalidInputError for anything else. */
export function dialectFor(name: unknown): ApiDialect {
  if (name === undefined || name === 'simple') return simpleDialect;
  if (name === 'real') return realDialect;
  throw new InvalidInputError(`api must be 'real' or 'simple', got ${JSON.stringify(name)}`);
}
