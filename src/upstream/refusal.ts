/**
 * How a loop words an upstream refusal in `upstream_error`, and the status
 * code read back from those words (drop-ins answer a gone session with the
 * upstream's own 404, on any instance of a cluster, which receives the text).
 */
import type { FailureOutcome } from './client.ts';

/** `upstream_error` of a session the upstream says does not exist. */
export const NOT_FOUND_TEXT = 'session not found upstream (404)';
const REJECTED_PREFIX = 'upstream rejected the credential (';

/** `upstream_error` of a refusal that lasts (404, 401, 403), or null for any other fault. */
export function refusalText(outcome: FailureOutcome): string | null {
  if (outcome.kind === 'not-found') return NOT_FOUND_TEXT;
  if (outcome.kind === 'unauthorized') return `${REJECTED_PREFIX}${outcome.status})`;
  return null;
}

/**
 * The refusal a loop's `upstream_error` shows, as the upstream's status code
 * (404: the session is gone; 401/403: the loop's credential is refused), or
 * null. Read from the text because the text is what every instance of a
 * cluster receives.
 */
export function refusalStatus(upstreamError: string | null): 401 | 403 | 404 | null {
  if (upstreamError === null) return null;
  if (upstreamError === NOT_FOUND_TEXT) return 404;
  if (upstreamError === `${REJECTED_PREFIX}401)`) return 401;
  if (upstreamError === `${REJECTED_PREFIX}403)`) return 403;
  return null;
}
