import { InvalidInputError } from './errors.ts';
import { DEFAULT_DETAIL_BYTES } from './generator.ts';
import { DEFAULT_IMAGE_BYTES, MAX_IMAGE_BYTES } from './trajectory.ts';
import type { SessionSpec } from './types.ts';

/** Events appended by one timer tick or one appendEvents call are capped, so a typo cannot eat the heap. */
export const MAX_APPEND_PER_CALL = 100_000;

/** A SessionSpec with its defaults filled in (the timer fields stay optional: absent means no timer). */
export type NormalizedSpec = Required<Omit<SessionSpec, 'emitEveryMs' | 'emitCount' | 'organisation' | 'request'>> &
  Pick<SessionSpec, 'emitEveryMs' | 'emitCount' | 'organisation' | 'request'>;

/** Checks that `value` is a non-negative integer (or absent: `fallback`). */
export function nonNegativeInt(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new InvalidInputError(`${name} must be a non-negative integer`);
  }
  return value;
}

function optionalName(name: string, value: unknown): string | undefined {
  if (value !== undefined && (typeof value !== 'string' || value === '')) throw new InvalidInputError(`${name} must be a non-empty string`);
  return value;
}

/** Checks a SessionSpec (it may come from JSON) and fills in its defaults. */
export function normalizeSpec(spec: SessionSpec): NormalizedSpec {
  if (typeof spec !== 'object' || spec === null) throw new InvalidInputError('spec must be an object');
  const emitEveryMs = spec.emitEveryMs === undefined ? undefined : nonNegativeInt('emitEveryMs', spec.emitEveryMs, 0);
  if (emitEveryMs === 0) throw new InvalidInputError('emitEveryMs must be positive');
  const emitCount = spec.emitCount === undefined ? undefined : nonNegativeInt('emitCount', spec.emitCount, 0);
  for (const key of ['finished', 'finishAfterEmit'] as const) {
    if (spec[key] !== undefined && typeof spec[key] !== 'boolean') throw new InvalidInputError(`${key} must be a boolean`);
  }
  const batchSize = nonNegativeInt('batchSize', spec.batchSize, 1);
  if (batchSize === 0 || batchSize > MAX_APPEND_PER_CALL) throw new InvalidInputError(`batchSize must be 1..${MAX_APPEND_PER_CALL}`);
  if (spec.request !== undefined && (typeof spec.request !== 'object' || spec.request === null || Array.isArray(spec.request))) {
    throw new InvalidInputError('request must be an object');
  }
  const imageBytes = nonNegativeInt('imageBytes', spec.imageBytes, DEFAULT_IMAGE_BYTES);
  if (imageBytes > MAX_IMAGE_BYTES) throw new InvalidInputError(`imageBytes must be at most ${MAX_IMAGE_BYTES}`);
  return {
    initialEvents: nonNegativeInt('initialEvents', spec.initialEvents, 0),
    finished: spec.finished ?? false,
    emitEveryMs,
    batchSize,
    emitCount,
    finishAfterEmit: spec.finishAfterEmit ?? emitCount !== undefined,
    detailBytes: nonNegativeInt('detailBytes', spec.detailBytes, DEFAULT_DETAIL_BYTES),
    imageBytes,
    organisation: optionalName('organisation', spec.organisation),
    request: spec.request,
  };
}
