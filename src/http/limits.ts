/**
 * Per-client limits, checked before a stream starts or a long-poll waits:
 * request rate per client (a token bucket), concurrent streams per client, per
 * session and in total, and the URL length. Every refusal is a 429 (or 414)
 * JSON answer from the one error mapping, with Retry-After.
 */
import { BlockList, isIP } from 'node:net';
import type { Context, Hono, MiddlewareHandler } from 'hono';
import { LRUCache } from 'lru-cache';
import type { AppEnv } from './env.ts';
import type { Config } from '../config.ts';
import { BadRequestError, TooManyRequestsError, UriTooLongError } from '../errors.ts';

/** Seconds a client refused for a stream limit is told to wait (a stream slot frees when another closes). */
export const STREAM_LIMIT_RETRY_AFTER_SECONDS = 5;
/**
 * Clients whose token bucket is remembered (entries of ~150 bytes: ~7.5 MB at
 * most). Past it the least recently seen client's bucket is forgotten, which
 * only ever gives that client a full bucket again: memory stays bounded, the
 * stream limits still hold.
 */
export const RATE_LIMIT_TRACKED_CLIENTS = 50_000;
/** Longest Retry-After a rate-limited client is told (s); the bucket refills well before at any sane rate. */
export const RATE_LIMIT_MAX_RETRY_AFTER_SECONDS = 3600;

/** Where the client address comes from: the socket, or a header that one trusted proxy in front sets. */
export type TrustProxy = 'none' | 'fly' | 'x-forwarded-for';

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything else unchanged. */
function unmapIpv4(ip: string): string {
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/** The key of every loopback client (127.0.0.0/8, ::1): the host itself, one client however it connects. */
export const LOOPBACK_KEY = 'loopback';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * The key a client is limited by: its IPv4 address, or the /64 prefix of its
 * IPv6 address (one subscriber line gets a whole /64, so a per-address limit
 * would be no limit at all), or LOOPBACK_KEY.
 */
export function clientKey(ip: string): string {
  const addr = unmapIpv4(ip.split('%')[0]!.toLowerCase());
  const family = isIP(addr);
  if (family !== 0 && LOOPBACK.check(addr, family === 4 ? 'ipv4' : 'ipv6')) return LOOPBACK_KEY;
  if (family !== 6) return addr;
  const groups = (part: string) => (part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])));
  const [head = '', tail] = addr.split('::');
  const first = groups(head);
  const last = tail === undefined ? [] : groups(tail);
  const all = [...first, ...Array<string>(Math.max(0, 8 - first.length - last.length)).fill('0'), ...last];
  return `${all.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}

/**
 * The client's address. Headers are believed only when TRUST_PROXY says a
 * proxy in front sets them, since any client can send them: `fly` reads
 * `Fly-Client-IP` (set by Fly's edge), `x-forwarded-for` reads the LAST entry
 * of `X-Forwarded-For` (the one the nearest proxy appended; earlier entries are
 * whatever the client wrote). A missing or malformed header falls back to the socket.
 */
export function clientIp(header: (name: string) => string | undefined, socketAddress: string | undefined, trust: TrustProxy): string {
  if (trust === 'fly') {
    const v = header('fly-client-ip')?.trim();
    if (v && isIP(v)) return unmapIpv4(v);
  } else if (trust === 'x-forwarded-for') {
    const v = header('x-forwarded-for')?.split(',').at(-1)?.trim();
    if (v && isIP(v)) return unmapIpv4(v);
  }
  return unmapIpv4(socketAddress ?? 'unknown');
}

/** A token bucket per client key, in a bounded LRU. */
export class RateLimiter {
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly spared: string | undefined;
  private readonly buckets = new LRUCache<string, { tokens: number; atMs: number }>({ max: RATE_LIMIT_TRACKED_CLIENTS });

  /** `perSecond` 0 disables the limit; the client key `spared` (if any) is never limited. */
  constructor(perSecond: number, burst: number, spared?: string) {
    this.perSecond = perSecond;
    this.burst = Math.max(1, burst);
    this.spared = spared;
  }

  /** Takes one token: 0 when allowed, else the seconds until a token is there. */
  take(key: string, nowMs = performance.now(), cost = 1): number {
    if (this.perSecond === 0 || cost <= 0 || key === this.spared) return 0;
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, atMs: nowMs };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((nowMs - b.atMs) / 1000) * this.perSecond);
      b.atMs = nowMs;
    }
    // A cost above the burst could never be paid: it takes the whole bucket.
    const need = Math.min(cost, this.burst);
    if (b.tokens >= need) {
      b.tokens -= need;
      return 0;
    }
    return (need - b.tokens) / this.perSecond;
  }

  /** Clients remembered now (bounded by RATE_LIMIT_TRACKED_CLIENTS). */
  get size(): number {
    return this.buckets.size;
  }
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 0) - 1;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

/**
 * Concurrent stream slots: in total, per client key and per session. A slot
 * is reserved synchronously before the first await of a stream open (so
 * concurrent opens cannot overshoot) and released exactly once, when the
 * stream closes or its open fails. The maps hold only keys with open streams,
 * so they are bounded by the total limit.
 */
export class StreamSlots {
  private readonly maxTotal: number;
  private readonly maxPerClient: number;
  private readonly maxPerSession: number;
  private readonly spared: string | undefined;
  private readonly byClient = new Map<string, number>();
  private readonly bySession = new Map<string, number>();
  private reserved = 0;

  /** A per-client or per-session limit of 0 means no limit of that kind; the client key `spared` (if any) has no per-client limit. */
  constructor(limits: { maxTotal: number; maxPerClient: number; maxPerSession: number; spared?: string }) {
    this.maxTotal = limits.maxTotal;
    this.maxPerClient = limits.maxPerClient;
    this.maxPerSession = limits.maxPerSession;
    this.spared = limits.spared;
  }

  /** Streams holding a slot now (opening or open). */
  get total(): number {
    return this.reserved;
  }

  /** Slots held by one client key. */
  forClient(key: string): number {
    return this.byClient.get(key) ?? 0;
  }

  /** Slots held for one session. */
  forSession(sessionId: string): number {
    return this.bySession.get(sessionId) ?? 0;
  }

  /**
   * Reserves one stream for `clientKey` reading `sessionIds` (one slot per
   * session), or throws 429. Returns the slot, whose `release()` is idempotent.
   */
  reserve(clientKey: string, sessionIds: readonly string[]): StreamSlot {
    const retry = STREAM_LIMIT_RETRY_AFTER_SECONDS;
    if (this.reserved >= this.maxTotal) {
      throw new TooManyRequestsError(`too many open streams (limit ${this.maxTotal})`, retry, 'streams_total');
    }
    if (this.maxPerClient > 0 && clientKey !== this.spared && this.forClient(clientKey) >= this.maxPerClient) {
      throw new TooManyRequestsError(`too many open streams from this client (limit ${this.maxPerClient})`, retry, 'streams_per_ip');
    }
    const sessions = [...new Set(sessionIds)];
    this.checkSessions(sessions);
    this.reserved++;
    this.byClient.set(clientKey, this.forClient(clientKey) + 1);
    for (const id of sessions) this.bySession.set(id, this.forSession(id) + 1);
    return new StreamSlot(this, clientKey, sessions);
  }

  /** Counts sessions a reserved stream reads from now on (StreamSlot.addSessions), or throws 429. */
  addSessions(sessionIds: readonly string[], held: readonly string[]): string[] {
    const sessions = [...new Set(sessionIds)].filter((id) => !held.includes(id));
    this.checkSessions(sessions);
    for (const id of sessions) this.bySession.set(id, this.forSession(id) + 1);
    return sessions;
  }

  private checkSessions(sessions: readonly string[]): void {
    if (this.maxPerSession <= 0) return;
    for (const id of sessions) {
      if (this.forSession(id) >= this.maxPerSession) {
        throw new TooManyRequestsError(`too many open streams for session ${JSON.stringify(id)} (limit ${this.maxPerSession})`, STREAM_LIMIT_RETRY_AFTER_SECONDS, 'streams_per_session');
      }
    }
  }

  /** Gives a slot back (StreamSlot.release calls it once). */
  free(clientKey: string, sessions: readonly string[]): void {
    this.reserved--;
    decrement(this.byClient, clientKey);
    for (const id of sessions) decrement(this.bySession, id);
  }
}

/**
 * One reserved stream slot. An object with a method rather than a closure: it
 * lives as long as its stream, and idle streams are counted in thousands.
 */
export class StreamSlot {
  private slots: StreamSlots | null;
  private readonly clientKey: string;
  private sessions: readonly string[];

  constructor(slots: StreamSlots, clientKey: string, sessions: readonly string[]) {
    this.slots = slots;
    this.clientKey = clientKey;
    this.sessions = sessions;
  }

  /**
   * Counts the stream against the per-session limit of `sessionIds` too, or
   * throws 429 (the slot is unchanged then). A stream held while its key is
   * judged reserves without its sessions, so that a key the upstream may yet
   * refuse does not crowd out a session's accepted viewers.
   */
  addSessions(sessionIds: readonly string[]): void {
    if (this.slots === null) return;
    this.sessions = [...this.sessions, ...this.slots.addSessions(sessionIds, this.sessions)];
  }

  /** Gives the slot back, once. */
  release(): void {
    this.slots?.free(this.clientKey, this.sessions);
    this.slots = null;
  }
}

/** Every limit of the process, built from the configuration. */
export interface Limits {
  readonly trustProxy: TrustProxy;
  readonly maxUrlBytes: number;
  readonly rate: RateLimiter;
  readonly streams: StreamSlots;
  /** The key the request's client is limited by. */
  clientKeyOf(c: Context<AppEnv>): string;
  /** The same, from a header reader and the socket's address (requests that do not pass through hono). */
  clientKeyFrom(header: (name: string) => string | undefined, socketAddress: string | undefined): string;
}

/**
 * The client key a per-address limit spares: at their defaults the per-address limits spare the host's own clients;
 * set, they hold for every address. Only where the socket is the client (no TRUST_PROXY): behind a proxy, a loopback
 * address is the proxy's, a header missing or malformed (the fallback to the socket) must not lift every limit.
 */
export function sparedClientKey(config: Config, setExplicitly: boolean): string | undefined {
  return setExplicitly || config.trustProxy !== 'none' ? undefined : LOOPBACK_KEY;
}

/** Creates the limits of one server. */
export function createLimits(config: Config): Limits {
  const trustProxy = config.trustProxy;
  const spared = (setExplicitly: boolean) => sparedClientKey(config, setExplicitly);
  return {
    trustProxy,
    maxUrlBytes: config.maxUrlBytes,
    rate: new RateLimiter(config.rateLimitPerIp, config.rateLimitBurst, spared(config.loopbackRateLimited)),
    streams: new StreamSlots({ maxTotal: config.maxStreams, maxPerClient: config.maxStreamsPerIp, maxPerSession: config.maxStreamsPerSession, spared: spared(config.loopbackStreamsLimited) }),
    clientKeyOf: (c) => clientKey(clientIp((name) => c.req.header(name), (c.env as Partial<AppEnv['Bindings']> | undefined)?.incoming?.socket.remoteAddress, trustProxy)),
    clientKeyFrom: (header, socketAddress) => clientKey(clientIp(header, socketAddress, trustProxy)),
  };
}

/**
 * Refuses a request target (path and query, as received) longer than MAX_URL_BYTES with 414 (Node itself refuses past
 * MAX_HEADER_BYTES with 431), and one that holds a `#` with 400.
 */
export function checkUrl(limits: Limits, target: string): void {
  // The request target reaches Node as latin1 bytes: its length is its size.
  if (target.length > limits.maxUrlBytes) {
    throw new UriTooLongError(limits.maxUrlBytes);
  }
  // A fragment is not part of a request target (RFC 9112 section 3.2), and only a raw client sends one: pollcast's
  // routes read it as the URL's end, the upstream as it pleases (an audit, 7 Dec 2026: `?access_token=k#rest` was the
  // key `k` on pollcast's routes, the key `k#rest` forwarded, and `?x=1#access_token=k` went on with the key in it).
  if (target.includes('#')) throw new BadRequestError('request target has a "#" (a fragment is never sent; encode it as %23)');
}

/** Takes `cost` tokens (default one) from the client's bucket, or refuses with 429 and the seconds until they are there. */
export function checkRate(limits: Limits, clientKey: string, cost = 1): void {
  const wait = limits.rate.take(clientKey, performance.now(), cost);
  if (wait > 0) {
    throw new TooManyRequestsError('too many requests from this client; slow down', Math.min(RATE_LIMIT_MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil(wait))), 'rate_limit');
  }
}

/** `checkUrl` as middleware. */
export function urlLimit(limits: Limits): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    checkUrl(limits, (c.env as Partial<AppEnv['Bindings']> | undefined)?.incoming?.url ?? c.req.url.replace(/^[a-z]+:\/\/[^/]*/i, ''));
    await next();
  };
}

/** `checkRate` as middleware. */
export function rateLimit(limits: Limits): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    checkRate(limits, limits.clientKeyOf(c));
    await next();
  };
}

/**
 * Installs the URL check on every route and the rate limit on stream opens and
 * long-polls, on Durable Stream reads, and on everything under the UPSTREAM_URL
 * path (drop-ins and forwarded requests alike: one token each).
 */
export function registerLimits(app: Hono<AppEnv>, limits: Limits, upstreamPath = ''): void {
  app.use('*', urlLimit(limits));
  app.use('/sessions/*', rateLimit(limits));
  app.use('/events', rateLimit(limits));
  if (upstreamPath !== '') {
    app.use(upstreamPath, rateLimit(limits));
    app.use(`${upstreamPath}/*`, rateLimit(limits));
  }
  app.use('/v1/stream/*', rateLimit(limits));
}
