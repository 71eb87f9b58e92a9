/**
 * The pass-through (CONTRACT.md section 3, "Everything else under the API's
 * path"): every request under the path of UPSTREAM_URL that no other route
 * answers goes to the upstream as the caller sent it (method, raw target,
 * headers less hop-by-hop ones, body streamed when its length is declared,
 * else read whole within the cap first) and its answer comes back as
 * the upstream gave it (status, headers, body streamed; redirects passed on).
 * Only the caller's own credential travels: the pool has no key, a pollcast
 * token (header, `access_token`, cookie) is cut out. A write that changes a
 * session nudges its loop, so watchers see `paused` at once.
 */
import { METHODS } from 'node:http';
import { constants as h2constants, type Http2Stream } from 'node:http2';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Context, Hono } from 'hono';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { AppDeps, AppEnv } from './deps.ts';
import { callerCredential } from './auth-upstream.ts';
import { bearerCredential } from './auth.ts';
import { watchBodyIdle } from './body-idle.ts';
import { middlewareHeaders } from './events-route.ts';
import { cookieNameOf, forwardRequestHeaders, forwardResponseHeaders, h2HeadProblem, METHOD_OVERRIDES, relayableHead, withoutQueryParams } from './forward-headers.ts';
import { clientIp } from './limits.ts';
import { originForm, splitTarget } from './raw-request.ts';
import { decodedSegment, parseSessionId } from './validate.ts';
import { methodNotAllowed } from './methods.ts';
import { isHttp1 } from '../hub/writer.ts';
import { ForwardError, type Forwarder } from '../upstream/forwarder.ts';
import { BadGatewayError, BadRequestError, PayloadTooLargeError, RequestTimeoutError, ShuttingDownError, TooManyRequestsError } from '../errors.ts';
import { boundedAll } from './bounded-all.ts';

/** The writes that change a session's status (`POST /sessions/{id}/<write>`, `DELETE /sessions/{id}`): after a 2xx, its loop refreshes at once. */
const NUDGING_WRITES: ReadonlySet<string> = new Set(['messages', 'pause', 'resume', 'force_answer', 'tool_results']);
/** Methods counted by name in the metrics; any other is `other` (labels stay bounded). */
const COUNTED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * A body sent without a declared length (chunked, or HTTP/2 without `content-length`), read whole
 * before anything goes upstream, so one past `maxBytes` is refused with nothing forwarded
 * (CONTRACT.md section 3). Null once it passes `maxBytes` (the rest is left unread).
 */
function readUndeclared(incoming: Readable, maxBytes: number, idleSeconds: number, budget: BodyBudget): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let seen = 0;
    // A body that stops arriving is refused (408), its bytes so far let go.
    const stopWatching = watchBodyIdle(incoming, idleSeconds * 1000, () => {
      done();
      incoming.pause();
      reject(new RequestTimeoutError(idleSeconds));
    });
    // What it holds of the shared budget, given back unless the whole body is handed over (the caller's then).
    let taken = 0;
    const done = (handedOver = false): void => {
      stopWatching();
      incoming.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (!handedOver) budget.give(taken);
      taken = 0;
    };
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen > maxBytes) {
        done();
        incoming.pause();
        resolve(null);
      } else if (!budget.take(chunk.length)) {
        done();
        incoming.pause();
        reject(budget.refusal());
      } else {
        taken += chunk.length;
        chunks.push(chunk);
      }
    };
    const finish = (): void => {
      const cut = callerReset(incoming);
      done(!cut);
      if (cut) reject(new Error('the request body broke off'));
      else resolve(Buffer.concat(chunks, seen));
    };
    // A caller that resets its HTTP/2 stream ends the body too, before 'aborted' (node:http2's client even sends
    // END_STREAM before the RST_STREAM that cancels): judged a moment later, once a reset that came with it is read,
    // so a cancelled upload is not forwarded as a whole one.
    const onEnd = (): void => {
      if (h2StreamOf(incoming) === undefined) finish();
      else setImmediate(finish);
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const onClose = (): void => onError(new Error('the request body broke off'));
    incoming.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/**
 * Request bodies read whole before forwarding (no length declared: chunked, or HTTP/2 without `content-length`)
 * are each capped by PASSTHROUGH_MAX_BODY_BYTES; all of them together hold at most this many times that (80 MiB at
 * the default). Past it a body is refused with 429 and `Retry-After: 1`. Until 6 Dec 2026 nothing capped the sum:
 * 30 such uploads stalled before their end took 275 MB (forwarding audit).
 */
export const FORWARD_BUFFERED_BODIES = 8;

/** The bytes of bodies read whole held now, against their shared cap. */
class BodyBudget {
  private held = 0;
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  take(n: number): boolean {
    if (this.held + n > this.max) return false;
    this.held += n;
    return true;
  }
  give(n: number): void {
    this.held -= n;
  }
  refusal(): TooManyRequestsError {
    return new TooManyRequestsError(`too many request bodies without a length are being read at once (at most ${this.max} bytes of them held); retry shortly`, 1, 'forward_buffered');
  }
}

/** The HTTP/2 stream of a request or response (compat API); undefined over HTTP/1.1. */
function h2StreamOf(message: object): Http2Stream | undefined {
  return (message as { stream?: Http2Stream }).stream;
}

/**
 * Whether the caller reset (or lost) the HTTP/2 stream of this request or response: aborted, or closed with an error
 * code (pollcast's own RST_STREAM NO_ERROR after an early answer is not one); never over HTTP/1.1.
 */
function callerReset(message: object): boolean {
  const stream = h2StreamOf(message);
  return stream !== undefined && (stream.aborted || (stream.rstCode !== undefined && stream.rstCode !== h2constants.NGHTTP2_NO_ERROR));
}

/**
 * Counts body bytes on their way upstream and fails the stream once they pass `maxBytes`, or when the body that
 * ended was cut by its caller's reset (`source`'s HTTP/2 stream): node:http2 ends the body of a reset stream as if
 * it were whole, also one whose DATA broke its content-length. Until 7 Dec 2026 such a request reached the upstream
 * complete, with an empty body (an audit: 20 runs of 20).
 */
class BodyLimit extends Transform {
  private seen = 0;
  private readonly maxBytes: number;
  private readonly source: object;
  overflowed = false;
  constructor(maxBytes: number, source: object) {
    super();
    this.maxBytes = maxBytes;
    this.source = source;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.maxBytes) {
      this.overflowed = true;
      return done(new PayloadTooLargeError(this.maxBytes));
    }
    done(null, chunk);
  }
  // Judged a moment after the end, as readUndeclared judges it: a reset that came with the end is read by then.
  override _flush(done: TransformCallback): void {
    if (h2StreamOf(this.source) === undefined) return done();
    setImmediate(() => done(callerReset(this.source) ? new Error('the request body broke off') : null));
  }
}

/** `path` with its escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) decoded, and every other escape kept. */
function withUnreservedDecoded(path: string): string {
  return path.replace(/%(2[DdEe]|3\d|[46][1-9A-Fa-f]|[57][0-9Aa]|5[Ff]|7[Ee])/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** A path segment `.`/`..` (escaped or not) would let a target leave the API's path once the upstream resolves it. */
function hasDotSegment(path: string): boolean {
  // Decoded too: an upstream that decodes `%2F` (or reads `\` as `/`) before routing would find `..` in `k%2F..%2Fx`.
  // Without its `;` parameters too, as a server that strips them reads it (`..;/` is `../` there).
  return path.split('/').some((segment) =>
    (decodedSegment(segment) ?? segment).split(/[/\\]/).some((part) => {
      const name = bare(part);
      return name === '.' || name === '..';
    }),
  );
}

/**
 * The segments of `rawPath` below `basePath` as an upstream that decodes before routing reads them:
 * each segment decoded (`/api/v%32/%73essions/a%20b` is the session `a b`), and an encoded `/` or
 * `\` taken for the separator it becomes (`sessions%2Fbad%20id` is the session `bad id`). A
 * malformed percent-encoding is refused (400).
 */
function segmentsAsRead(rawPath: string, basePath: string): string[] {
  const decoded = rawPath.split('/').map(decodedSegment);
  if (decoded.includes(undefined)) throw new BadRequestError('request target has a malformed percent-encoding');
  const joined = decoded.join('/');
  // No API path holds one, and upstream servers read a NUL or a line break each their own way.
  if (/[\u0000-\u001f\u007f]/.test(joined)) throw new BadRequestError('request target has a control character (%00–%1F or %7F)');
  return joined.split(/[/\\]/).slice(basePath.split('/').length);
}

/** A segment's name without its `;` parameters, as servers that strip them route it (`sessions;x=1` is `sessions`). */
function bare(segment: string | undefined): string | undefined {
  return segment?.split(';', 1)[0];
}

/**
 * A session's path carries an id of the contract's pattern, as pollcast's own routes do: anything
 * else is refused (400) before it is forwarded. The path is judged as the upstream reads it
 * (`segmentsAsRead`); what is sent is the path as the caller wrote it, so an encoded `/` elsewhere
 * stays the API's own (`skills/h%2Fweb-search`, a resource key `run%2Fstep-1.png`).
 */
function checkSessionSegment(segments: readonly string[]): void {
  if (bare(segments[0]) !== 'sessions' || segments.length < 2) return;
  // `/sessions/` alone is the list's path with a trailing slash, not an empty id.
  if (segments.length === 2 && segments[1] === '') return;
  parseSessionId(segments[1]);
}

/** The session a forwarded write changed (`segments` as `segmentsAsRead` gives them), if it is one of the nudging writes. */
export function nudgedSession(method: string, segments: readonly string[]): string | undefined {
  if (bare(segments[0]) !== 'sessions') return undefined;
  const nudges = method === 'POST' ? segments.length === 3 && NUDGING_WRITES.has(bare(segments[2])!) : method === 'DELETE' && segments.length === 2;
  // `DELETE …/sessions/` is the list's path, not a session's.
  return nudges && segments[1] !== '' ? segments[1] : undefined;
}

/**
 * Words of one forwarded request judged at once (is it a pollcast token?). Up to this many unknown kids share one
 * wait for the key set's next fetch (one at a time, each waited a cooldown of its own: ten took 10.2 s and ten
 * fetches); more at once, a request full of JWT-shaped words (thousands fit in MAX_HEADER_BYTES) held the event loop
 * for as long as judging them took (12,000 at once: 0.6-1.3 s without another request answered).
 */
const TOKENS_JUDGED_AT_ONCE = 16;

/**
 * The JWT-shaped words of a value. A JWT's own characters are base64url and dots: anything else (spaces, commas, `=`,
 * `;`, quotes, braces) parts it from what surrounds it, so one inside `t=<jwt>` or a JSON value is found too. A word
 * of more than three dot-parted parts is read as every run of three whose first begins as a JWT's JSON header does
 * (`ey`), so a token with a dot beside it (`<jwt>.`, `a.<jwt>.b`) is found too; escaped unreserved characters
 * (`%2E` for a dot) are read decoded, as in a cookie or header that carries a token percent-encoded (an audit,
 * 7 Dec 2026: each of these went upstream).
 */
function jwtShapedWords(value: string): string[] {
  const words: string[] = [];
  for (const word of withUnreservedDecoded(value).split(/[^A-Za-z0-9_.-]+/)) {
    const parts = word.split('.');
    if (parts.length === 3) words.push(word);
    else if (parts.length > 3) {
      for (let i = 0; i + 3 <= parts.length; i++) if (parts[i]!.startsWith('ey') && parts[i + 1] !== '' && parts[i + 2] !== '') words.push(`${parts[i]}.${parts[i + 1]}.${parts[i + 2]}`);
    }
  }
  return words;
}

/** The pollcast tokens among the JWT-shaped words of `values`, each distinct word judged once, TOKENS_JUDGED_AT_ONCE at a time. */
async function subscriberTokensAmong(values: Iterable<string>, isOurs: (value: string) => Promise<boolean>): Promise<Set<string>> {
  const words = new Set<string>();
  for (const value of values) for (const word of jwtShapedWords(value)) words.add(word);
  const list = [...words];
  const verdicts = await boundedAll(list, TOKENS_JUDGED_AT_ONCE, isOurs);
  return new Set(list.filter((_, i) => verdicts[i]));
}

/** Whether `value` holds one of `ours` anywhere (a second `Authorization` line, "bearer<TAB>token", a repeated `access_token`). */
function holdsToken(value: string, ours: ReadonlySet<string>): boolean {
  return ours.size > 0 && jwtShapedWords(value).some((word) => ours.has(word));
}

/** The request headers (lower-case names; Cookie is judged cookie by cookie) a line of which holds a pollcast token. */
function headersHoldingTokens(rawHeaders: readonly string[], ours: ReadonlySet<string>): Set<string> {
  const out = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name !== 'cookie' && !out.has(name) && holdsToken(rawHeaders[i + 1]!, ours)) out.add(name);
  }
  return out;
}

/** The cookies (by name) whose value holds a pollcast token, in any `Cookie` line. */
function cookiesHoldingTokens(lines: readonly string[], ours: ReadonlySet<string>): Set<string> {
  const out = new Set<string>();
  for (const line of lines) {
    for (const part of line.split(';')) {
      const name = cookieNameOf(part);
      if (!out.has(name) && holdsToken(part.slice(part.indexOf('=') + 1), ours)) out.add(name);
    }
  }
  return out;
}

/** Every value of the request header `name` (lower-case), each line on its own. */
function headerLines(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  return out;
}

function count(record: Record<string, number>, key: string): void {
  record[key] = (record[key] ?? 0) + 1;
}

async function forward(c: Context<AppEnv>, deps: AppDeps, forwarder: Forwarder, budget: BodyBudget): Promise<Response> {
  if (deps.isShuttingDown()) throw new ShuttingDownError();
  const incoming = c.env.incoming;
  const outgoing = c.env.outgoing;
  const method = incoming.method ?? c.req.method;
  // HTTP/1.1's parser knows its methods; an HTTP/2 request's :method is any token (`BREW`, `get`): only those go on.
  if (!METHODS.includes(method) || method === 'CONNECT') throw new BadRequestError(`method ${JSON.stringify(method.slice(0, 20))} is not an HTTP method pollcast forwards`);
  // TRACE would echo the request, the caller's credential with it, from a server the API does not answer TRACE on.
  if (method === 'TRACE') return methodNotAllowed([...COUNTED_METHODS])(c);
  // Another method asked for in a header (a POST tunnelling a DELETE) would reach the upstream as neither: refused.
  // (One that names the request's own method asks for nothing: the header is dropped.)
  const override = METHOD_OVERRIDES.find((name) => {
    const asked = c.req.header(name);
    return asked !== undefined && asked.trim().toUpperCase() !== method;
  });
  if (override !== undefined) throw new BadRequestError(`${override} is not forwarded: send the request with its own method`);
  const rawTarget = originForm(incoming.url ?? '/');
  // HTTP/1.1's parser refuses a raw byte past ASCII in the target; an HTTP/2 :path may carry one (an overlong UTF-8
  // `.`, a fullwidth `．`), which some servers fold into a dot segment: refused as over HTTP/1.1 (an audit, 7 Dec 2026).
  if (/[^\x21-\x7e]/.test(rawTarget)) throw new BadRequestError('request target has a character that must be percent-encoded');
  const { path, query } = splitTarget(rawTarget);
  // The path sent must be under the API path, not only the one the router read (a URL parser reads
  // `http:///internal/api/v2` as the host `internal`; a review, 7 Dec 2026). Escaped unreserved characters compare
  // decoded (RFC 3986 section 6.2.2.2), as the router compares them: `/api/v%32/…` is under `/api/v2`.
  const asRouted = withUnreservedDecoded(path);
  if (deps.upstreamPath !== '' && asRouted !== deps.upstreamPath && !asRouted.startsWith(`${deps.upstreamPath}/`)) throw new BadRequestError('request target is not under the API path');
  if (!rawTarget.startsWith('/') || hasDotSegment(path)) throw new BadRequestError('request target must be a plain path under the API path (no dot segments)');
  if (path.includes('//')) throw new BadRequestError('request target has an empty path segment');
  const segments = segmentsAsRead(path, deps.upstreamPath);
  checkSessionSegment(segments);
  // Also as a server that merges `//` reads it, a segment empty once decoded or stripped of its `;` parameters
  // dropped: `/;/sessions/-x` is its `/sessions/-x` (an audit, 7 Dec 2026: the id went unchecked).
  const merged = segments.filter((segment, i) => bare(segment) !== '' || i === segments.length - 1);
  checkSessionSegment(merged);

  const maxBytes = deps.config.passthroughMaxBodyBytes;
  const declared = c.req.header('content-length');
  if (declared !== undefined && (!/^\d+$/.test(declared.trim()) || Number(declared) > maxBytes)) {
    // Refused before a byte is read or sent upstream; the connection is not reused (its body is unread).
    if (isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
    if (!/^\d+$/.test(declared.trim())) throw new BadRequestError('Content-Length must be a whole number');
    count(deps.stats.forwardErrors, 'too_large');
    throw new PayloadTooLargeError(maxBytes);
  }

  // A pollcast token is pollcast's: never shown to the upstream, wherever the caller put it (any header or query
  // parameter, any cookie; the pollcast cookie goes in any case). Every line and every repeated parameter is judged; one holding
  // a token takes the whole header (or parameter) with it.
  // Query pairs are judged as URLSearchParams decodes them (and removed so: withoutQueryParams), names too (`?<jwt>`).
  const queryPairs = query === '' ? [] : query.split('&').flatMap((part) => [...new URLSearchParams(part)]);
  const headerValues = incoming.rawHeaders.filter((_, i) => i % 2 === 1);
  const ours = await subscriberTokensAmong([...headerValues, ...queryPairs.flat(), ...segments], deps.isSubscriberToken);
  // A token in the path cannot be cut out of it (the path is the route): the request is refused, never forwarded.
  if (segments.some((segment) => holdsToken(segment, ours))) throw new BadRequestError('the request path holds a pollcast access token, which is never forwarded: send it in Authorization: Bearer, access_token or the cookie');
  const dropHeaders = headersHoldingTokens(incoming.rawHeaders, ours);
  const dropAuthorization = dropHeaders.has('authorization');
  const dropCookies = cookiesHoldingTokens(headerLines(incoming.rawHeaders, 'cookie'), ours);
  // The header UPSTREAM_AUTH_HEADER names carries keys: one holding a token is not a key the caller sent.
  const keyHeader = deps.config.upstreamAuthHeader?.toLowerCase();
  const dropHeader = keyHeader !== undefined && dropHeaders.has(keyHeader) ? keyHeader : undefined;
  let target = rawTarget;
  const accessTokens = query === '' ? [] : new URLSearchParams(query).getAll('access_token');
  const droppedParams = new Set<string>();
  for (const [name, value] of queryPairs) if (holdsToken(name, ours) || holdsToken(value, ours)) droppedParams.add(name);
  const tokenInQuery = droppedParams.has('access_token');
  // With AUTH=upstream an `access_token` is a caller's key, as pollcast reads it on its own routes: it moves to
  // the header the upstream reads keys from (when no key is there already), never left in a URL the upstream logs.
  const keyInQuery = !tokenInQuery && deps.config.auth === 'upstream' && accessTokens.length > 0;
  if (keyInQuery) droppedParams.add('access_token');
  if (droppedParams.size > 0) {
    const kept = withoutQueryParams(query, droppedParams) ?? query;
    target = kept === '' ? path : `${path}?${kept}`;
  }
  const trust = deps.config.trustProxy;
  const headers = forwardRequestHeaders(
    incoming.rawHeaders,
    {
      clientIp: clientIp((name) => c.req.header(name), incoming.socket?.remoteAddress, trust),
      proto: 'http',
      host: c.req.header('host') ?? (isHttp1(outgoing) ? undefined : (incoming.headers[':authority'] as string | undefined)),
      trustForwarded: trust !== 'none',
    },
    { cookieName: deps.config.authCookieName, dropAuthorization, dropHeaders, dropCookies },
  );
  if (keyInQuery) {
    // Read as pollcast's own routes read it: a key header the caller sent wins (an empty UPSTREAM_AUTH_HEADER
    // does not), the first `access_token` counts, and a malformed key is a 401 here as there: bad input never
    // reaches the upstream, nor a header.
    const keyHeaderSent = keyHeader !== undefined && dropHeader === undefined && headerLines(incoming.rawHeaders, keyHeader).some((v) => v.trim() !== '');
    // A Bearer line is a key; one of another scheme (Basic, for a proxy in front) is not, and gives way to the key.
    const headerKey = (!dropAuthorization && headerLines(incoming.rawHeaders, 'authorization').some((v) => bearerCredential(v) !== undefined)) || keyHeaderSent;
    let credential;
    try {
      credential = headerKey ? undefined : callerCredential({ authorization: undefined, accessToken: new URLSearchParams(query).get('access_token') ?? undefined, cookie: undefined }, deps.config.upstreamAuthHeader);
    } catch (err) {
      // Refused before the body is read: the connection is not reused (node would read the rest to reuse it).
      if (isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
      throw err;
    }
    if (credential) {
      // An empty key header the caller sent goes, or the upstream would see it beside the key; so does an
      // `Authorization` of another scheme where the key goes in `Authorization` (no Bearer line was sent: see above).
      for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i]!.toLowerCase() === credential.header && (headers[i + 1]!.trim() === '' || credential.header === 'authorization')) headers.splice(i, 2);
      headers.push(credential.header, credential.value);
    }
  }

  // A coding past `chunked` (`gzip, chunked`) would go on decoded of its chunks only, and named nowhere.
  const transferEncoding = c.req.header('transfer-encoding');
  if (transferEncoding !== undefined && transferEncoding.trim().toLowerCase() !== 'chunked') {
    if (isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
    throw new BadRequestError('Transfer-Encoding other than chunked is not forwarded');
  }
  const hasBody = declared !== undefined ? Number(declared) > 0 : transferEncoding !== undefined || (!isHttp1(outgoing) && method !== 'GET' && method !== 'HEAD');
  // An HTTP/2 request that declares no body (`content-length: 0`, or a GET or HEAD with no length) but leaves its stream
  // open is read to its end before it goes: DATA past a declared length resets the stream (node:http2), and it is not
  // forwarded; a GET's DATA goes on as its body, as HTTP/1.1's would. Until 7 Dec 2026 such requests went at once with
  // an empty body (audits: 10 runs of 10 for `content-length: 0`; a GET's DATA was dropped).
  const openWhenEmpty = !hasBody && h2StreamOf(incoming)?.endAfterHeaders === false;
  let whole: Buffer | null = null;
  const idleSeconds = deps.config.bodyTimeoutSeconds;
  if ((hasBody && declared === undefined) || openWhenEmpty) {
    try {
      whole = await readUndeclared(incoming, maxBytes, idleSeconds, budget);
    } catch (err) {
      if (err instanceof TooManyRequestsError) {
        // The rest of the body is not read: the connection is not reused.
        if (isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
        throw err;
      }
      if (err instanceof RequestTimeoutError) {
        // The rest of the body is not waited for: the connection closes after the answer.
        if (isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
        count(deps.stats.forwardErrors, 'body_timeout');
        throw err;
      }
      if (outgoing.destroyed || incoming.destroyed) return RESPONSE_ALREADY_SENT;
      throw new BadRequestError('the request body broke off');
    }
    if (whole === null) {
      // The rest of the body is not read: the connection is not reused.
      if (isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
      count(deps.stats.forwardErrors, 'too_large');
      throw new PayloadTooLargeError(maxBytes);
    }
  }
  // A declared length was checked above: that body is streamed, counted on its way in case it runs longer.
  const limit = hasBody && whole === null ? new BodyLimit(maxBytes, incoming) : null;
  let bodyStalled = false;
  let stopWatching = (): void => undefined;
  if (limit) {
    incoming.on('error', (err) => limit.destroy(err));
    // A body that stops arriving fails the upstream call (which lets go of it) and is refused with 408.
    stopWatching = watchBodyIdle(incoming, idleSeconds * 1000, () => {
      bodyStalled = true;
      limit.destroy(new RequestTimeoutError(idleSeconds));
    });
    incoming.pipe(limit);
  }
  const abort = new AbortController();
  // An HTTP/2 response reset by its caller says it finished all the same: its stream's reset code says it was cut.
  const onClose = (): void => {
    if (!outgoing.writableFinished || callerReset(outgoing)) abort.abort();
  };
  outgoing.once('close', onClose);

  let answer;
  try {
    answer = await forwarder.forward({ method, target, headers, body: whole ?? limit, signal: abort.signal });
    // Answered: what is left of the body is the upstream's business now (undici ends it with the answer).
    stopWatching();
  } catch (err) {
    stopWatching();
    if (limit) {
      // The rest of the body is not read: the connection is not reused.
      incoming.unpipe(limit);
      limit.destroy();
      if (isHttp1(outgoing)) outgoing.shouldKeepAlive = false;
    }
    outgoing.off('close', onClose);
    if (limit?.overflowed) {
      count(deps.stats.forwardErrors, 'too_large');
      throw new PayloadTooLargeError(maxBytes);
    }
    if (bodyStalled) {
      count(deps.stats.forwardErrors, 'body_timeout');
      throw new RequestTimeoutError(idleSeconds);
    }
    const kind = err instanceof ForwardError ? err.kind : 'body';
    count(deps.stats.forwardErrors, kind);
    if (kind === 'aborted' || outgoing.destroyed) return RESPONSE_ALREADY_SENT;
    throw new BadGatewayError(err instanceof Error ? err.message : String(err), { cause: err });
  } finally {
    // The body read whole has gone upstream (or will not): its share of the budget is free again.
    if (whole !== null) budget.give(whole.length);
  }

  const status = answer.status;
  // A status past 599 (HTTP/1.1 carries up to 999) counts as `other`, not a class of its own.
  count(deps.stats.forwarded, `${COUNTED_METHODS.has(method) ? method : 'other'}|${status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other'}`);
  if (status >= 200 && status < 300) {
    // As a server that merges `//` reads it too (the checks above hold for both).
    const id = nudgedSession(method, merged);
    if (id !== undefined) deps.hub.nudge(id);
  }
  const cors = middlewareHeaders(c, deps);
  const upstreamHead = forwardResponseHeaders(answer.headers, Object.keys(cors).length > 0);
  const h2 = !isHttp1(outgoing);
  const head = relayableHead({ ...upstreamHead, ...cors }, status, h2);
  // Both vary (the upstream by Accept-Encoding, say; pollcast's CORS by Origin): a cache must key on every one.
  if (upstreamHead.vary !== undefined && cors.vary !== undefined) head.vary = [upstreamHead.vary, cors.vary].flat().join(', ');
  try {
    // HTTP/2 has no status past 599 (HTTP/1.1 carries up to 999, as node:http does).
    if (h2 && status > 599) throw new Error(`status ${status} has no HTTP/2 form`);
    const h2Problem = h2 ? h2HeadProblem(head) : null;
    if (h2Problem !== null) throw new Error(h2Problem);
    if (isHttp1(outgoing)) outgoing.writeHead(status, head);
    else outgoing.writeHead(status, head);
  } catch (err) {
    // Nothing is sent yet: the caller gets a 502 that says why, and pollcast's body read ends quietly.
    outgoing.off('close', onClose);
    discard(answer.body);
    count(deps.stats.forwardErrors, 'head');
    throw new BadGatewayError(`the upstream's answer cannot be relayed: ${(err as Error).message}`, { cause: err });
  }
  // Answered before the upstream read the whole body (an early 401 or 413): once the answer is relayed, an HTTP/2
  // caller is asked to stop sending it (RST_STREAM NO_ERROR once the answer is out, RFC 9113 §8.1). Otherwise it
  // waits for ever on a window nobody opens again, and so does the relay, which ends with the stream.
  const stream = h2StreamOf(outgoing);
  if (stream !== undefined && limit !== null) {
    // After the relay's own end() of the answer (the close waits for it to be sent).
    answer.body.once('end', () =>
      setImmediate(() => {
        if (incoming.readableEnded || stream.closed) return;
        incoming.unpipe(limit);
        stream.close(h2constants.NGHTTP2_NO_ERROR);
      }),
    );
  }
  try {
    await pipeline(answer.body, outgoing);
  } catch {
    // The upstream's body broke off or the caller left: the answer is cut, as a proxy cuts it.
    count(deps.stats.forwardErrors, abort.signal.aborted ? 'aborted' : 'body');
    discard(answer.body);
    if (!outgoing.destroyed) outgoing.destroy();
  } finally {
    outgoing.off('close', onClose);
  }
  return RESPONSE_ALREADY_SENT;
}

/** Drops an upstream body unread; the error its destruction emits (undici: "Request aborted") has a listener, so it never reaches the process. */
function discard(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

/** Registers the pass-through under the path of UPSTREAM_URL, after every route pollcast answers itself. */
export function registerForwardRoute(app: Hono<AppEnv>, deps: AppDeps): void {
  const forwarder = deps.forward;
  if (forwarder === undefined || deps.upstreamPath === '') return;
  const budget = new BodyBudget(FORWARD_BUFFERED_BODIES * deps.config.passthroughMaxBodyBytes);
  // Counted while under way: a graceful stop lets them finish (server.ts) rather than cutting them.
  const handler = (c: Context<AppEnv>) => deps.forwardsInFlight.run(() => forward(c, deps, forwarder, budget));
  app.all(deps.upstreamPath, handler);
  app.all(`${deps.upstreamPath}/*`, handler);
}
