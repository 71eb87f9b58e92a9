/**
 * Configuration: environment variables (CONTRACT.md section 2 plus pollcast's
 * own limits) and the command-line flags that mirror them, validated in one
 * place into one frozen object. A bad value stops the start with a message
 * naming the variable and the accepted form.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

/** A configuration problem, naming the variable at fault. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

// Digits only: Number() would also take " " (0), "0x50", "1e3" and "Infinity". A minus sign is named as such.
const NOT_NEGATIVE = (s: string) => !s.startsWith('-');
// The range is checked before zod's own integer check, whose message for a huge value ("<=9007199254740991")
// would not name the accepted range.
const int = (min: number, max: number) => z.string().trim().refine(NOT_NEGATIVE, 'must not be negative').regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().min(min).max(max).int());
const num = (min: number, max: number) => z.string().trim().refine(NOT_NEGATIVE, 'must not be negative').regex(/^\d+(\.\d+)?$/, 'must be a decimal number').transform(Number).pipe(z.number().min(min).max(max));

/** Why `u` cannot be the upstream base URL, or undefined. */
function upstreamUrlProblem(u: string): string | undefined {
  if (!URL.canParse(u)) return 'not a URL';
  const url = new URL(u);
  if (!/^https?:$/.test(url.protocol)) return 'must be an http:// or https:// URL';
  // The client keeps only origin and path: a key put here would be dropped and printed in logs.
  if (url.username || url.password) return 'must not carry credentials; put the key in UPSTREAM_API_KEY';
  if (url.search || url.hash) return 'must not carry a query or fragment; put a key in UPSTREAM_API_KEY';
  // `https://user:123/pw@host/…` parses as host `user`, port 123: credentials with a `/` in them, not an API path.
  if (url.pathname.includes('@')) return 'must not carry credentials (an @ in its path); put the key in UPSTREAM_API_KEY';
  return undefined;
}
const httpUrl = z.string().superRefine((u, ctx) => {
  const problem = upstreamUrlProblem(u);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Longest DNS name (RFC 1035 §2.3.4) and label (RFC 1123 §2.1) allowed in HOST. */
const MAX_HOST_NAME_LENGTH = 253;
const HOST_NAME_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Why `host` cannot be HOST, or undefined: it must be an IP literal or an RFC 1123 host name. */
function hostProblem(host: string): string | undefined {
  if (isIP(host) !== 0) return undefined;
  if (host.startsWith('[')) return 'an IPv6 address is written without brackets, e.g. ::1';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(host)) return 'a host, not a URL: drop the scheme and any path';
  if (host.includes(':')) return 'not a valid IPv6 address (a port goes in PORT)';
  // A name of digits and dots would be read as an IPv4 address (RFC 1123 §2.1), so it must be one.
  if (/^[\d.]+$/.test(host)) return 'not a valid IPv4 address';
  if (host.length > MAX_HOST_NAME_LENGTH) return `a host name is at most ${MAX_HOST_NAME_LENGTH} characters`;
  const label = host.split('.').find((l) => !HOST_NAME_LABEL.test(l));
  if (label === '') return 'empty label: two dots in a row, or a dot at either end';
  if (label !== undefined) return `${JSON.stringify(label)} is not a host name label: 1-63 letters, digits or hyphens, no hyphen at either end, no underscore`;
  return undefined;
}
const hostSchema = z.string().superRefine((h, ctx) => {
  const problem = hostProblem(h);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Why `value` is not a CORS_ORIGINS list, or undefined. Browsers send `scheme://host[:port]`, lower-case, no default port, no slash. */
function corsOriginsProblem(value: string): string | undefined {
  const list = value.split(',').map((o) => o.trim()).filter(Boolean);
  if (list.length === 0) return 'no origin given';
  if (list.includes('*') && list.length > 1) return '* allows every origin and cannot be combined with a list: give * alone or only origins';
  for (const o of list) {
    if (o === '*') continue;
    if (!URL.canParse(o) || new URL(o).origin !== o) return `${JSON.stringify(o)} is not an origin as browsers send it (scheme://host[:port], lower-case, no path or trailing slash)`;
  }
  return undefined;
}
const corsOrigins = z.string().superRefine((v, ctx) => {
  const problem = corsOriginsProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** PUBLIC_SESSIONS: `*`, or session ids (the pattern of CONTRACT.md section 3) separated by commas. */
// A list of commas alone names no session: refused, as CORS_ORIGINS refuses one (until 7 Dec 2026 it was taken, an audit).
const publicSessions = z.string().refine((v) => {
  if (v.trim() === '*') return true;
  const ids = v.split(',').map((s) => s.trim()).filter(Boolean);
  return ids.length > 0 && ids.every((id) => /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(id));
}, 'must be * or comma-separated session ids');

/** Whether PUBLIC_SESSIONS makes `sessionId` public. */
export function isPublicSession(value: string | undefined, sessionId: string): boolean {
  if (value === undefined) return false;
  const list = value.split(',').map((s) => s.trim());
  return list.includes('*') || list.includes(sessionId);
}

/** The value as shown in an error: secrets hidden, and a URL's credentials and query dropped. */
function shownValue(opt: OptionSpec, value: string): string {
  if (opt.secret) return '(hidden)';
  // Judged as text, not as the URL it may parse as: a password may hold `#`, `?` or `/` (`https://u:1?pw@host`), a
  // scheme may be missing (`user:pw@host`, a URL of scheme `user:`). Everything up to the last `@` goes first, then
  // any query or fragment.
  if (/[@?#]/.test(value)) return JSON.stringify(value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/is, '$1').replace(/[?#].*$/s, '')) + ' (credentials and query not shown)';
  return JSON.stringify(value);
}
/** Whether a URL component decodes (a password with a stray `%` does not; the Redis client would throw at start). */
function decodes(component: string): boolean {
  try {
    decodeURIComponent(component);
    return true;
  } catch {
    return false;
  }
}
const redisUrl = z.string().superRefine((u, ctx) => {
  if (!URL.canParse(u)) return void ctx.addIssue({ code: 'custom', message: 'not a URL' });
  const url = new URL(u);
  if (!/^rediss?:$/.test(url.protocol)) return void ctx.addIssue({ code: 'custom', message: 'must be a redis:// or rediss:// URL' });
  // As the Redis client reads it: the path is a database number or nothing.
  if (!/^(\/(\d{1,5})?)?$/.test(url.pathname)) ctx.addIssue({ code: 'custom', message: 'path must be a database number (redis://host:6379/0) or nothing' });
  if (!decodes(url.username) || !decodes(url.password)) ctx.addIssue({ code: 'custom', message: 'user or password is not valid percent-encoding' });
});
/** Why `u` cannot be AUTH_JWKS_URL, or undefined: keys fetched over anything but http(s) cannot be. */
function jwksUrlProblem(u: string): string | undefined {
  if (!URL.canParse(u)) return 'not a URL';
  const url = new URL(u);
  if (!/^https?:$/.test(url.protocol)) return 'must be an http:// or https:// URL';
  if (url.username || url.password || url.pathname.includes('@')) return 'must not carry credentials';
  return undefined;
}
const jwksUrl = z.string().superRefine((u, ctx) => {
  const problem = jwksUrlProblem(u);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
/** A claim value as written in a token: printable, no spaces (e.g. `sessions`, `https://app.example.com/sessions`). */
const claimValue = z.string().min(1).max(1024).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');
/** A cookie name (RFC 6265 §4.1.1: an RFC 7230 token). */
const cookieName = z.string().max(256).regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be a cookie name: letters, digits and !#$%&\'*+.^_`|~-');
/**
 * Headers that cannot carry the key: HTTP's own framing and connection headers (undici refuses some,
 * the rest would misroute or break every call) and the two pollcast sets on every upstream call.
 */
const UNUSABLE_AUTH_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'upgrade', 'te', 'trailer', 'expect', 'accept', 'user-agent']);
const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name such as X-API-Key')
  .superRefine((v, ctx) => {
    if (UNUSABLE_AUTH_HEADERS.has(v.toLowerCase())) ctx.addIssue({ code: 'custom', message: `HTTP or pollcast itself sets ${v}; use the header the API reads the key from, such as X-API-Key` });
  });

/** One setting: its variable, its flag, its default and what it accepts. */
interface OptionSpec {
  env: string;
  key: keyof ConfigShape;
  flag: string;
  help: string;
  accepts: string;
  schema: z.ZodType;
  default?: string;
  secret?: boolean;
}

/**
 * Default byte budget of one session's replay buffer (SESSION_MAX_BYTES): the
 * newest frames within it stay in memory, older ones are fetched again from
 * the upstream by the readers that need them (the hub's history path). 8 MiB
 * holds a whole typical run (some forty 200 KB screenshots, or tens of
 * thousands of small events), so a finished session is still served to late
 * readers without upstream calls, while a screenshot-heavy long run no longer
 * keeps its whole history (was 32 MiB; bench/RESULTS.md, issue 21).
 */
export const SESSION_REPLAY_BUDGET_BYTES = 8 * 1024 * 1024;

/**
 * Default byte budget of all running sessions' replay buffers together
 * (REPLAY_MAX_BYTES): one busy session keeps its 8 MiB, a hundred keep about
 * 650 KB each. Without it, a hundred sessions sending ~100 KB screenshots
 * held up to 800 MiB (bench/RESULTS.md, fifteenth round: 40 s of them held
 * ~200 MiB, peak RSS 1.30x the naive server's, which holds none).
 */
export const REPLAY_BUDGET_BYTES = 64 * 1024 * 1024;

/** Every setting, in the order `--help` lists them. */

export const OPTIONS: readonly OptionSpec[] = [
  { env: 'PORT', key: 'port', flag: 'port', help: 'TCP port to listen on', accepts: 'an integer 0-65535', schema: int(0, 65535), default: '8080' },
  { env: 'HOST', key: 'host', flag: 'host', help: 'address to listen on', accepts: 'an IPv4 or IPv6 address, or a host name (letters, digits, hyphens and dots)', schema: hostSchema, default: '0.0.0.0' },
  { env: 'UPSTREAM_URL', key: 'upstreamUrl', flag: 'upstream', help: 'base URL of the sessions API, with its path (e.g. https://api.example.com/api/v2); unset = built-in simulated demo API', accepts: 'an http(s) URL', schema: httpUrl },
  { env: 'UPSTREAM_API_KEY', key: 'upstreamApiKey', flag: 'upstream-api-key', help: 'credential sent upstream (Authorization: Bearer)', accepts: 'printable ASCII without spaces, 1-4096 characters', schema: z.string().min(1).max(4096).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces'), secret: true },
  { env: 'UPSTREAM_AUTH_HEADER', key: 'upstreamAuthHeader', flag: 'upstream-auth-header', help: 'send the key raw in this header instead (e.g. X-API-Key); needs UPSTREAM_API_KEY, or AUTH=upstream (callers send their own key in it)', accepts: 'an HTTP header name (not Host, Content-Length, Transfer-Encoding, Connection, Accept, User-Agent and the like)', schema: headerName },
  { env: 'UPSTREAM_WAIT_SECONDS', key: 'upstreamWaitSeconds', flag: 'upstream-wait-seconds', help: 'wait_for_seconds of the long-poll loop', accepts: 'an integer 1-120', schema: int(1, 120), default: '25' },
  { env: 'UPSTREAM_TIMEOUT_MARGIN_SECONDS', key: 'upstreamTimeoutMarginSeconds', flag: 'upstream-timeout-margin-seconds', help: 'seconds past the wait before a silent upstream call is abandoned (a body that keeps coming, each piece within this, is abandoned at the wait plus twice this)', accepts: 'an integer 1-120', schema: int(1, 120), default: '10' },
  { env: 'UPSTREAM_PAGE_SIZE', key: 'upstreamPageSize', flag: 'upstream-page-size', help: 'limit asked per changes call', accepts: 'an integer 1-10000', schema: int(1, 10000), default: '100' },
  { env: 'UPSTREAM_MAX_BODY_BYTES', key: 'upstreamMaxBodyBytes', flag: 'upstream-max-body-bytes', help: 'largest upstream answer read; a bigger page is asked again with fewer events, a single bigger event is relayed without its data', accepts: 'an integer 65536-1073741824', schema: int(65_536, 1 << 30), default: String(16 * 1024 * 1024) },
  { env: 'STATUS_FRESH_SECONDS', key: 'statusFreshSeconds', flag: 'status-fresh-seconds', help: 'a drop-in /status or /changes caller that finds the loop\'s status older than this (and no event since) has it asked upstream first, once for every caller: at most one /status call per this long per loop, however many poll; between the loop\'s own calls a change of status with no event shows up to this late (cluster mode: on the instance that runs the loop; another answers what that loop last wrote, docs/cluster.md)', accepts: 'a number 1-3600', schema: num(1, 3600), default: '10' },
  { env: 'UPSTREAM_GIVE_UP_SECONDS', key: 'upstreamGiveUpSeconds', flag: 'upstream-give-up-seconds', help: 'how long a lasting upstream 401/403/404 is retried before streams end', accepts: 'an integer 1-86400', schema: int(1, 86400), default: '300' },
  { env: 'AUTH_JWT_SECRET', key: 'authJwtSecret', flag: 'auth-jwt-secret', help: 'HS256 secret; when set every subscriber needs a JWT', accepts: 'a string of at least 32 bytes', schema: z.string().refine((s) => Buffer.byteLength(s) >= 32, 'must be at least 32 bytes long'), secret: true },
  { env: 'AUTH_JWKS_URL', key: 'authJwksUrl', flag: 'auth-jwks-url', help: 'identity provider key set (RS256, ES256, EdDSA); when set every subscriber needs a JWT', accepts: 'an http(s) URL', schema: jwksUrl },
  { env: 'AUTH_JWKS_CACHE_SECONDS', key: 'authJwksCacheSeconds', flag: 'auth-jwks-cache-seconds', help: 'how long fetched JWKS keys count as fresh; past it the next token refetches them (known keys keep working while the endpoint is down)', accepts: 'an integer 1-86400', schema: int(1, 86400), default: '600' },
  { env: 'AUTH_JWKS_COOLDOWN_SECONDS', key: 'authJwksCooldownSeconds', flag: 'auth-jwks-cooldown-seconds', help: 'least time between two JWKS fetches caused by a token with an unknown kid (a rotation); such a token waits for the next fetch', accepts: 'an integer 1-3600', schema: int(1, 3600), default: '1' },
  { env: 'AUTH_JWT_ISSUER', key: 'authJwtIssuer', flag: 'auth-jwt-issuer', help: 'iss a token must carry', accepts: 'a non-empty string without spaces', schema: claimValue },
  { env: 'AUTH_JWT_AUDIENCE', key: 'authJwtAudience', flag: 'auth-jwt-audience', help: 'aud a token must carry', accepts: 'a non-empty string without spaces', schema: claimValue },
  { env: 'AUTH_JWT_SESSIONS_CLAIM', key: 'authJwtSessionsClaim', flag: 'auth-jwt-sessions-claim', help: 'claim listing the session ids a token may read (or ["*"])', accepts: 'a claim name such as sessions or https://app.example.com/sessions', schema: claimValue, default: 'sessions' },
  { env: 'AUTH_COOKIE_NAME', key: 'authCookieName', flag: 'auth-cookie-name', help: 'cookie that may carry the subscriber token (EventSource withCredentials; never forwarded upstream)', accepts: 'a cookie name', schema: cookieName, default: 'pollcast_token' },
  { env: 'AUTH', key: 'auth', flag: 'auth', help: '"none" lets anyone subscribe without a token (ignored, with a warning, when AUTH_JWT_SECRET or AUTH_JWKS_URL is set); "upstream": subscribers bring their own upstream key, checked with the upstream (may be combined with AUTH_JWT_SECRET)', accepts: '"none" or "upstream"', schema: z.enum(['none', 'upstream']) },
  { env: 'AUTH_UPSTREAM_CACHE_SECONDS', key: 'authUpstreamCacheSeconds', flag: 'auth-upstream-cache-seconds', help: 'AUTH=upstream: how long the upstream\'s verdict on a (key, session) pair is kept (a refusal at most 5 s); open streams are checked again when it runs out', accepts: 'an integer 1-3600', schema: int(1, 3600), default: '60' },
  { env: 'PUBLIC_SESSIONS', key: 'publicSessions', flag: 'public-sessions', help: 'sessions anyone may read as Durable Streams (GET /v1/stream/sessions/{id}), whose fixed ranges a shared cache may keep (Cache-Control: public); * for every session', accepts: '* or comma-separated session ids', schema: publicSessions },
  { env: 'CORS_ORIGINS', key: 'corsOrigins', flag: 'cors-origins', help: 'comma-separated allowed origins, or *', accepts: '* alone, or origins like https://app.example.com', schema: corsOrigins },
  { env: 'REDIS_URL', key: 'redisUrl', flag: 'redis-url', help: 'cluster mode: instances share one loop per session and one replay log through this Redis (a single primary, not Redis Cluster)', accepts: 'a redis:// or rediss:// (TLS) URL', schema: redisUrl, secret: true },
  { env: 'REDIS_KEY_PREFIX', key: 'redisKeyPrefix', flag: 'redis-key-prefix', help: 'prefix of every key pollcast writes (several deployments can share one Redis)', accepts: 'letters, digits and .:_- (up to 64)', schema: z.string().max(64, 'must be at most 64 characters').regex(/^[A-Za-z0-9.:_-]+$/, 'must be letters, digits or .:_-'), default: 'pollcast:' },
  { env: 'REDIS_LEASE_SECONDS', key: 'redisLeaseSeconds', flag: 'redis-lease-seconds', help: 'a session leader\'s lease, renewed every third of it on its own timer (whatever the long-poll does): a dead leader is replaced within about it', accepts: 'an integer 2-600', schema: int(2, 600), default: '8' },
  { env: 'REDIS_LOG_MAX_ENTRIES', key: 'redisLogMaxEntries', flag: 'redis-log-max-entries', help: 'entries (events and status updates) kept per session log, trimmed approximately; older events are fetched again from upstream', accepts: 'an integer 100-1000000', schema: int(100, 1_000_000), default: '1000' },
  { env: 'REDIS_RETENTION_SECONDS', key: 'redisRetentionSeconds', flag: 'redis-retention-seconds', help: 'how long a session log stays in Redis after its last write (a finished session: after its end)', accepts: 'an integer 60-31536000', schema: int(60, 31_536_000), default: '86400' },
  { env: 'LOG_LEVEL', key: 'logLevel', flag: 'log-level', help: 'log verbosity', accepts: 'trace, debug, info, warn, error, fatal or silent', schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']), default: 'info' },
  { env: 'IDLE_GRACE_SECONDS', key: 'idleGraceSeconds', flag: 'idle-grace-seconds', help: 'a loop with no subscriber stops after this long', accepts: 'a number 0-3600', schema: num(0, 3600), default: '30' },
  { env: 'HEARTBEAT_SECONDS', key: 'heartbeatSeconds', flag: 'heartbeat-seconds', help: 'bounds the silence of an SSE stream: every third of this, a stream that sent nothing since the last look gets a comment line (: keep-alive), so an idle one gets one every third and none is silent longer than two thirds (a Durable Streams SSE read: a comment after two thirds of silence)', accepts: 'a number 0.1-15', schema: num(0.1, 15), default: '15' },
  { env: 'SSE_RETRY_MS', key: 'sseRetryMs', flag: 'sse-retry-ms', help: 'reconnect delay sent to EventSource in the retry: field', accepts: 'an integer 0-600000', schema: int(0, 600_000), default: '2000' },
  { env: 'SUBSCRIBER_MAX_QUEUE_BYTES', key: 'subscriberMaxQueueBytes', flag: 'subscriber-max-queue-bytes', help: 'unsent bytes a slow subscriber may hold before it is dropped', accepts: 'an integer 1024-1073741824', schema: int(1024, 1 << 30), default: String(1 << 20) },
  { env: 'SESSION_MAX_EVENTS', key: 'sessionMaxEvents', flag: 'session-max-events', help: 'events buffered per session (older ones are re-fetched on demand)', accepts: 'an integer 1-10000000', schema: int(1, 10_000_000), default: '50000' },
  { env: 'SESSION_MAX_BYTES', key: 'sessionMaxBytes', flag: 'session-max-bytes', help: 'bytes of event frames kept per session for replay, the newest (older events are re-fetched from upstream on demand)', accepts: 'an integer 1024-4294967296', schema: int(1024, 2 ** 32), default: String(SESSION_REPLAY_BUDGET_BYTES) },
  { env: 'REPLAY_MAX_BYTES', key: 'replayMaxBytes', flag: 'replay-max-bytes', help: 'bytes of event frames all running sessions keep for replay together: each keeps at most its equal share (and SESSION_MAX_BYTES); older events are re-fetched from upstream on demand', accepts: 'an integer 1024-68719476736', schema: int(1024, 2 ** 36), default: String(REPLAY_BUDGET_BYTES) },
  { env: 'MAX_SESSIONS', key: 'maxSessions', flag: 'max-sessions', help: 'sessions with a loop or a subscriber at once (more: 429)', accepts: 'an integer 1-1000000', schema: int(1, 1_000_000), default: '2000' },
  { env: 'IDLE_CACHE_SECONDS', key: 'idleCacheSeconds', flag: 'idle-cache-seconds', help: 'an unfinished session whose loop stopped for want of readers is kept this long (its events, for the next reader), then let go', accepts: 'a number 1-86400', schema: num(1, 86400), default: '600' },
  { env: 'CACHE_MAX_SESSIONS', key: 'cacheMaxSessions', flag: 'cache-max-sessions', help: 'idle and finished sessions kept for replay', accepts: 'an integer 1-1000000', schema: int(1, 1_000_000), default: '5000' },
  { env: 'CACHE_MAX_BYTES', key: 'cacheMaxBytes', flag: 'cache-max-bytes', help: 'bytes of idle and finished sessions kept for replay', accepts: 'an integer 1024-68719476736', schema: int(1024, 2 ** 36), default: String(256 * 1024 * 1024) },
  { env: 'MAX_STREAMS', key: 'maxStreams', flag: 'max-streams', help: 'concurrent SSE streams in total (more: 429)', accepts: 'an integer 1-1000000', schema: int(1, 1_000_000), default: '20000' },
  { env: 'MAX_STREAMS_PER_IP', key: 'maxStreamsPerIp', flag: 'max-streams-per-ip', help: 'concurrent SSE streams per client address, an IPv6 client by its /64 (more: 429); 0 = no limit; unset, and with TRUST_PROXY unset, loopback clients (127.0.0.0/8, ::1: the host itself) are not limited', accepts: 'an integer 0-1000000', schema: int(0, 1_000_000), default: '200' },
  { env: 'MAX_STREAMS_PER_SESSION', key: 'maxStreamsPerSession', flag: 'max-streams-per-session', help: 'concurrent SSE streams reading one session (more: 429); 0 = no limit', accepts: 'an integer 0-1000000', schema: int(0, 1_000_000), default: '2000' },
  { env: 'RATE_LIMIT_PER_IP', key: 'rateLimitPerIp', flag: 'rate-limit-per-ip', help: 'stream opens and /changes requests per second per client address, sustained (more: 429 with Retry-After); 0 = no limit; unset (and RATE_LIMIT_BURST unset), with TRUST_PROXY unset, loopback clients are not limited', accepts: 'a number 0-1000000', schema: num(0, 1_000_000), default: '50' },
  { env: 'RATE_LIMIT_BURST', key: 'rateLimitBurst', flag: 'rate-limit-burst', help: 'requests a client address may make at once before RATE_LIMIT_PER_IP applies', accepts: 'an integer 1-1000000', schema: int(1, 1_000_000), default: '500' },
  { env: 'MAX_URL_BYTES', key: 'maxUrlBytes', flag: 'max-url-bytes', help: 'longest request target, path and query (longer: 414)', accepts: 'an integer 256-1048576, not above MAX_HEADER_BYTES', schema: int(256, 1 << 20), default: '16384' },
  { env: 'MAX_HEADER_BYTES', key: 'maxHeaderBytes', flag: 'max-header-bytes', help: 'largest request line plus headers (larger: 431, connection closed)', accepts: 'an integer 1024-1048576', schema: int(1024, 1 << 20), default: '32768' },
  { env: 'TRUST_PROXY', key: 'trustProxy', flag: 'trust-proxy', help: 'take the client address from Fly-Client-IP (fly) or the last X-Forwarded-For entry (x-forwarded-for); only behind a proxy that sets it', accepts: 'none, fly or x-forwarded-for', schema: z.enum(['none', 'fly', 'x-forwarded-for']), default: 'none' },
  { env: 'MAX_SESSIONS_PER_STREAM', key: 'maxSessionsPerStream', flag: 'max-sessions-per-stream', help: 'sessions one multiplexed stream (GET/POST /events) may read (more: 400)', accepts: 'an integer 1-1000', schema: int(1, 1000), default: '100' },
  { env: 'SESSION_LIST_POLL_SECONDS', key: 'sessionListPollSeconds', flag: 'session-list-poll-seconds', help: 'how often a watched session list (GET /sessions/events) is read upstream, once per distinct credential scope and filter', accepts: 'a number 0.2-3600', schema: num(0.2, 3600), default: '3' },
  { env: 'SESSION_LIST_MAX_SESSIONS', key: 'sessionListMaxSessions', flag: 'session-list-max-sessions', help: 'sessions one list poll reads at most (pages of 100, one upstream call each); the rest are counted in total only', accepts: 'an integer 1-10000', schema: int(1, 10_000), default: '500' },
  { env: 'SESSION_LIST_MAX_LISTS', key: 'sessionListMaxLists', flag: 'session-list-max-lists', help: 'distinct session lists (credential scope and filter) polled at once; a viewer of one more is refused with 429', accepts: 'an integer 1-100000', schema: int(1, 100_000), default: '100' },
  { env: 'SESSION_LIST_MAX_LISTS_PER_IP', key: 'sessionListMaxListsPerIp', flag: 'session-list-max-lists-per-ip', help: 'of those, lists one client address (an IPv6 client by its /64) may keep polled at once: a list counts against the client that started it, once it left against one still viewing it or the next to view it; a viewer of one more is refused with 429; 0 = no limit; unset, and with TRUST_PROXY unset, loopback clients are not limited', accepts: 'an integer 0-100000', schema: int(0, 100_000), default: '10' },
  { env: 'SESSION_LIST_GRACE_SECONDS', key: 'sessionListGraceSeconds', flag: 'session-list-grace-seconds', help: 'a session list with no viewer is polled for this long more, then dropped', accepts: 'a number 0-3600', schema: num(0, 3600), default: '10' },
  { env: 'H2C', key: 'h2c', flag: 'h2c', help: 'also serve cleartext HTTP/2 (prior knowledge, as proxies that speak h2c to their backends and curl --http2-prior-knowledge send it) on the same port as HTTP/1.1; false serves HTTP/1.1 only', accepts: 'true or false', schema: z.enum(['true', 'false']).transform((v) => v === 'true'), default: 'true' },
  { env: 'PASSTHROUGH', key: 'passthrough', flag: 'passthrough', help: 'forward every other request under the path of UPSTREAM_URL to the upstream (the caller\'s own credential, never UPSTREAM_API_KEY); unset: on, except off with JWT-only auth', accepts: 'true or false', schema: z.enum(['true', 'false']).transform((v) => v === 'true') },
  { env: 'PASSTHROUGH_MAX_BODY_BYTES', key: 'passthroughMaxBodyBytes', flag: 'passthrough-max-body-bytes', help: 'largest request body forwarded (bigger: 413, nothing forwarded)', accepts: 'an integer 0-1073741824', schema: int(0, 1 << 30), default: String(10 * 1024 * 1024) },
  { env: 'BODY_TIMEOUT_SECONDS', key: 'bodyTimeoutSeconds', flag: 'body-timeout-seconds', help: 'longest pause in a request body (forwarded calls, POST /events) before it is refused with 408 and its connection closed; also how long a client may stop reading a Durable catch-up answer of older history before its connection is closed', accepts: 'a number 0.1-3600', schema: num(0.1, 3600), default: '30' },
  { env: 'SHUTDOWN_TIMEOUT_SECONDS', key: 'shutdownTimeoutSeconds', flag: 'shutdown-timeout-seconds', help: 'longest graceful stop before the process exits', accepts: 'a number 0.1-60', schema: num(0.1, 60), default: '8' },
];

/** The validated configuration. */
export interface ConfigShape {
  port: number;
  host: string;
  upstreamUrl: string | undefined;
  upstreamApiKey: string | undefined;
  upstreamAuthHeader: string | undefined;
  upstreamWaitSeconds: number;
  upstreamTimeoutMarginSeconds: number;
  upstreamPageSize: number;
  upstreamMaxBodyBytes: number;
  upstreamGiveUpSeconds: number;
  statusFreshSeconds: number;
  authJwtSecret: string | undefined;
  authJwksUrl: string | undefined;
  authJwksCacheSeconds: number;
  authJwksCooldownSeconds: number;
  authJwtIssuer: string | undefined;
  authJwtAudience: string | undefined;
  authJwtSessionsClaim: string;
  authCookieName: string;
  auth: 'none' | 'upstream' | undefined;
  authUpstreamCacheSeconds: number;
  corsOrigins: string | undefined;
  publicSessions: string | undefined;
  redisUrl: string | undefined;
  redisKeyPrefix: string;
  redisLeaseSeconds: number;
  redisLogMaxEntries: number;
  redisRetentionSeconds: number;
  logLevel: string;
  idleGraceSeconds: number;
  heartbeatSeconds: number;
  sseRetryMs: number;
  subscriberMaxQueueBytes: number;
  sessionMaxEvents: number;
  sessionMaxBytes: number;
  replayMaxBytes: number;
  maxSessions: number;
  idleCacheSeconds: number;
  cacheMaxSessions: number;
  cacheMaxBytes: number;
  maxStreams: number;
  maxStreamsPerIp: number;
  maxStreamsPerSession: number;
  rateLimitPerIp: number;
  rateLimitBurst: number;
  maxUrlBytes: number;
  maxHeaderBytes: number;
  trustProxy: 'none' | 'fly' | 'x-forwarded-for';
  maxSessionsPerStream: number;
  sessionListPollSeconds: number;
  sessionListMaxSessions: number;
  sessionListMaxLists: number;
  sessionListMaxListsPerIp: number;
  sessionListGraceSeconds: number;
  h2c: boolean;
  /** Undefined: the default of passthroughOn(). */
  passthrough: boolean | undefined;
  passthroughMaxBodyBytes: number;
  bodyTimeoutSeconds: number;
  shutdownTimeoutSeconds: number;
  /** MAX_STREAMS_PER_IP was set: it holds for loopback clients too (at its default it spares them). */
  loopbackStreamsLimited: boolean;
  /** RATE_LIMIT_PER_IP or RATE_LIMIT_BURST was set: the rate holds for loopback clients too. */
  loopbackRateLimited: boolean;
  /** SESSION_LIST_MAX_LISTS_PER_IP was set: it holds for loopback clients too. */
  loopbackListsLimited: boolean;
}

/** The frozen configuration every module reads. */
export type Config = Readonly<ConfigShape>;

/** Reads settings from `env` (flags already merged in as their variables). */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const out: Record<string, unknown> = {};
  const given = (name: string) => env[name] !== undefined && env[name] !== '';
  // The per-address limits guard against one remote client; at their defaults they spare the host's own
  // (tests, a sidecar, a load generator, a proxy without TRUST_PROXY). Set explicitly, they hold for every address.
  out.loopbackStreamsLimited = given('MAX_STREAMS_PER_IP');
  out.loopbackRateLimited = given('RATE_LIMIT_PER_IP') || given('RATE_LIMIT_BURST');
  out.loopbackListsLimited = given('SESSION_LIST_MAX_LISTS_PER_IP');
  for (const opt of OPTIONS) {
    const raw = env[opt.env];
    const value = raw === undefined || raw === '' ? opt.default : raw;
    if (value === undefined) {
      out[opt.key] = undefined;
      continue;
    }
    const parsed = opt.schema.safeParse(value);
    if (!parsed.success) {
      const shown = shownValue(opt, value);
      const issue = parsed.error.issues[0];
      // A list of allowed values says it all (zod's own message would repeat it); a case slip gets a hint.
      const listed = issue?.code === 'invalid_value' || (issue?.code === 'invalid_type' && opt.accepts.startsWith('"'));
      const caseHint = listed && opt.schema.safeParse(value.toLowerCase()).success ? ' (values are lower case)' : '';
      throw new ConfigError(opt.env, `invalid value ${shown}: expected ${opt.accepts}${listed ? caseHint : ` (${issue?.message ?? 'invalid'})`}`);
    }
    out[opt.key] = parsed.data;
  }
  const config = out as unknown as ConfigShape;
  // With AUTH=upstream the header also names where callers put their own keys, so it may stand alone.
  if (config.upstreamAuthHeader && !config.upstreamApiKey && config.auth !== 'upstream') {
    throw new ConfigError('UPSTREAM_AUTH_HEADER', 'is set but UPSTREAM_API_KEY is not: set the key it should carry (or AUTH=upstream, where callers send their own key in it)');
  }
  // Node counts the request line into the header limit: a longer URL limit would never answer 414.
  if (config.maxUrlBytes > config.maxHeaderBytes) {
    throw new ConfigError('MAX_URL_BYTES', `is ${config.maxUrlBytes} but must not exceed MAX_HEADER_BYTES (${config.maxHeaderBytes}), which includes the URL`);
  }
  // Secure by default: a real upstream behind an open bridge would stream anyone's sessions to anyone.
  if (config.upstreamUrl && !tokenAuthConfigured(config) && config.auth === undefined) {
    throw new ConfigError('AUTH', 'UPSTREAM_URL is set, so subscribers must be authenticated: set AUTH_JWT_SECRET or AUTH_JWKS_URL (tokens), AUTH=upstream (callers\' own upstream keys), or AUTH=none to allow anyone');
  }
  // iss and aud pin whose tokens count; with no key to check a token they would protect nothing.
  for (const [variable, value] of [['AUTH_JWT_ISSUER', config.authJwtIssuer], ['AUTH_JWT_AUDIENCE', config.authJwtAudience]] as const) {
    if (value !== undefined && !tokenAuthConfigured(config)) throw new ConfigError(variable, 'is set but neither AUTH_JWT_SECRET nor AUTH_JWKS_URL is: set the key that checks tokens');
  }
  return Object.freeze(config);
}

/** True when subscriber tokens are checked (AUTH_JWT_SECRET or AUTH_JWKS_URL). */
export function tokenAuthConfigured(config: Pick<ConfigShape, 'authJwtSecret' | 'authJwksUrl'>): boolean {
  return config.authJwtSecret !== undefined || config.authJwksUrl !== undefined;
}

/** True when anyone may read every session (AUTH=none or the demo, with no token mode): the authorizer lets everyone in. */
export function openAccess(config: Pick<ConfigShape, 'auth' | 'authJwtSecret' | 'authJwksUrl'>): boolean {
  // Tokens win over AUTH=none (createAuthorizer checks them), so AUTH=none with a secret is not open.
  return config.auth !== 'upstream' && !tokenAuthConfigured(config);
}

/**
 * Whether the rest of the API is forwarded (PASSTHROUGH): as set, else on,
 * except with JWT-only auth (a token mode without AUTH=upstream), whose callers
 * hold pollcast tokens rather than upstream keys.
 */
export function passthroughOn(config: Config): boolean {
  if (config.passthrough !== undefined) return config.passthrough;
  return !(tokenAuthConfigured(config) && config.auth !== 'upstream');
}

/** What `--help` says pollcast is, before the options. */
const HELP_ABOUT = [
  'pollcast puts the Agent API behind one base URL and turns its long-poll (GET /sessions/{id}/changes) into',
  'Server-Sent Events: browsers open GET /sessions/{id}/events (or /events?session=a&session=b, or the live',
  'list at /sessions/events) and receive each session\'s status, every event once and in order, and an end,',
  'resuming exactly with Last-Event-ID; one upstream loop per session serves every subscriber and the API\'s own',
  'changes/status callers (across instances with REDIS_URL), and every other call under UPSTREAM_URL\'s path is',
  'forwarded with the caller\'s own key. Without UPSTREAM_URL it runs a built-in simulated sessions API with a',
  'demo dashboard, so `pollcast` alone shows it working.',
];

/** Maps command-line flags (`--port 8080`, `--port=8080`) onto their variables, over `env`. */
export function applyFlags(argv: readonly string[], env: Record<string, string | undefined>): Record<string, string | undefined> {
  const merged = { ...env };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError(arg, 'unexpected argument; options look like --port 8080 (see --help)');
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const opt = OPTIONS.find((o) => o.flag === name || o.env.toLowerCase().replace(/_/g, '-') === name);
    if (!opt) throw new ConfigError(`--${name}`, 'unknown option (see --help)');
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    // An empty value (`--log-level=`) would read as unset and put the default over the environment's value.
    if (value === undefined || value === '') throw new ConfigError(`--${name}`, `needs a value: ${opt.accepts}`);
    merged[opt.env] = value;
  }
  return merged;
}

/** The `--help` text: every flag with its variable, default and accepted form. */
export function helpText(): string {
  const lines = [
    'Usage: pollcast [options]',
    '',
    ...HELP_ABOUT,
    '',
    'Every option can also be set by its environment variable.',
    '',
  ];
  const width = Math.max(...OPTIONS.map((o) => o.flag.length)) + '  -- <value>  '.length;
  for (const o of OPTIONS) {
    const def = o.default === undefined ? '' : ` (default ${o.default})`;
    lines.push(`  --${o.flag} <value>`.padEnd(width) + `${o.env}: ${o.help}; ${o.accepts}${def}`);
  }
  lines.push('  --help'.padEnd(width) + 'print this help and exit');
  lines.push('  --version'.padEnd(width) + 'print the version and exit');
  return lines.join('\n');
}
