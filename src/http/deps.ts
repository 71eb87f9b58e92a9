/** What the routes share: the parts of the process they use. */
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Hub } from '../hub/hub.ts';
import type { ListHub } from '../hub/list-hub.ts';
import type { Streams } from '../hub/streams.ts';
import type { Metrics, Stats } from '../metrics.ts';
import type { Forwarder } from '../upstream/forwarder.ts';
import type { ReadinessProbe } from '../readiness.ts';
import type { Authorizer, SubscriberTokenCheck } from './auth.ts';
import type { InFlight } from './in-flight.ts';
import type { CatchUpGate } from './catch-up-gate.ts';
import type { Limits } from './limits.ts';

export type { AppEnv } from './env.ts';

/** What the routes need from the rest of the process. */
export interface AppDeps {
  config: Config;
  hub: Hub;
  /** The session lists watched (`GET /sessions/events`). */
  lists: ListHub;
  streams: Streams;
  stats: Stats;
  metrics: Metrics;
  log: Logger;
  authorize: Authorizer;
  /** Rate, stream and URL limits (src/http/limits.ts). */
  limits: Limits;
  isShuttingDown: () => boolean;
  /** Aborted as shutdown begins: what requests left waiting (drop-in long-polls) listen to, to answer at once. */
  shutdownSignal: AbortSignal;
  /** Readiness (`/readyz`): the sessions API and the cluster store. */
  readiness: ReadinessProbe;
  /** The path of UPSTREAM_URL (e.g. `/api/v2`), under which the drop-ins are served too; '' for none. */
  upstreamPath: string;
  /** The pass-through to the upstream (no credential of its own); undefined when forwarding is off or UPSTREAM_URL has no path. */
  forward?: Forwarder | undefined;
  /**
   * Cluster mode only: whether this instance may be behind another one (it cannot read the shared log now, or
   * reads it again since less than about a lease; see durable-read.ts and the transport's `mayLag`).
   */
  clusterMayLag?: (() => boolean) | undefined;
  /** Forwarded calls under way, which a graceful stop lets finish within its budget. */
  forwardsInFlight: InFlight;
  /** Durable catch-up answers that re-read history from the upstream, a few at once (catch-up-gate.ts). */
  catchUps: CatchUpGate;
  /** Whether a bearer value is a pollcast subscriber token, which is never forwarded upstream. */
  isSubscriberToken: SubscriberTokenCheck;
}
