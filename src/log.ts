/** Structured JSON logs (pino), pretty in a terminal, with secrets redacted. */
import type { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

/** Paths that may hold a secret anywhere pollcast logs an object. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'apiKey',
  'upstreamApiKey',
  'authJwtSecret',
  'token',
  'access_token',
  '*.apiKey',
  '*.upstreamApiKey',
  '*.authJwtSecret',
  '*.token',
  '*.access_token',
  'authorization',
  '*.authorization',
];

/**
 * Query parameters whose value is a secret (compared decoded and lower-cased): pollcast's own `access_token`, and
 * the names callers put keys under on forwarded calls (`api_key`, `apikey`), which the request log at debug level
 * would otherwise keep. SECRET_PARAM_NAME catches the rest of the usual names.
 */
export const SECRET_QUERY_PARAMS: ReadonlySet<string> = new Set(['access_token', 'token', 'api_key', 'apikey', 'api-key', 'key', 'sig', 'auth', 'authorization', 'bearer', 'jwt', 'pass', 'pw', 'code']);
/** Names that hold a secret by what they say: `…token`, `…secret`, `password`, `…signature`, `…_key`, `credential…`. */
const SECRET_PARAM_NAME = /token|secret|passw|pwd|signature|credential|[_.-]key$/;

/** `raw` percent-decoded (and `+` as a space), lower-cased; as it is when an escape is malformed. */
function decodedLower(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/** Whether a plain, lower-cased name holds a secret. */
function secretWord(word: string): boolean {
  return SECRET_QUERY_PARAMS.has(word) || SECRET_PARAM_NAME.test(word);
}

function isSecretParam(rawName: string): boolean {
  // hono decodes parameter names, so `access%5Ftoken=` is a token too. Only a plain name is judged by what it says: a
  // name with more in it (`access_token%3D…`) may hold the secret itself, and goes whole (mentionsSecret).
  const name = decodedLower(rawName);
  return /^[a-z0-9_.-]+$/.test(name) ? secretWord(name) : SECRET_QUERY_PARAMS.has(name);
}

/**
 * Whether a query part names a secret parameter anywhere, however malformed (`access_token[]=`, `+access_token=`,
 * `access_token%3D…`, `api-key[0]=`): each word of its name (split at whatever a plain name has not) is judged.
 */
function mentionsSecret(rawPart: string): boolean {
  const part = decodedLower(rawPart);
  if (part.includes('access_token') || part.includes('api_key') || part.includes('api-key') || part.includes('apikey')) return true;
  return part
    .split('=')[0]!
    .split(/[^a-z0-9_.-]+/)
    .some(secretWord);
}

/** One `name=value` part, its value replaced when its name says it is a secret. */
function redactPart(pair: string): string {
  if (pair === '&' || pair === '#' || pair === ';') return pair;
  const eq = pair.indexOf('=');
  const name = eq === -1 ? pair : pair.slice(0, eq);
  if (isSecretParam(name)) return `${name}=[REDACTED]`;
  // A malformed form of it (`access_token[]=`, `+access_token=`, `access_token%3D…`): the secret may be in the
  // name itself, so the whole part goes.
  return mentionsSecret(pair) ? '[REDACTED]' : pair;
}

/**
 * A JWS or JWE in compact form: base64url parts joined by dots, the first a JSON header (`{"` is `eyJ`), any of its
 * characters percent-encoded as a URL may carry them (`%65yJ…`, `…%2E…`).
 */
const JWT_IN_TEXT = /(?:e|%65)(?:y|%79)(?:J|%4a)(?:[A-Za-z0-9_-]|%[0-9a-f]{2})*(?:(?:\.|%2e)(?:[A-Za-z0-9_-]|%[0-9a-f]{2})*){2,4}/gi;

/**
 * Replaces the values of secret parameters in a URL or path (`access_token`, keys, passwords, however the name is
 * encoded) so request logs and error messages never carry them: in the query, and as `;name=value` parameters of the
 * path (no route reads those, but a client may put a token there).
 */
export function redactUrl(url: string): string {
  // A JWT anywhere (a path segment, a parameter of any name): its header is JSON, `{"` in base64url is `eyJ`.
  if (url.includes('yJ') || url.includes('%')) url = url.replace(JWT_IN_TEXT, '[REDACTED]');
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const safePath = path.includes(';') ? path.replace(/;([^;/]*)/g, (_m, pair: string) => `;${redactPart(pair)}`) : path;
  if (q === -1) return safePath;
  // Everything after `?` is judged, past a `#` too: browsers never send a fragment, but a raw client may put
  // `#` in its request target, and the routes (and the upstream) still read the parameters after it.
  // `;` separates too: some servers (and clients) read `a=1;access_token=…` as two parameters.
  const query = url
    .slice(q + 1)
    .split(/([&#;])/)
    .map(redactPart)
    .join('');
  return `${safePath}?${query}`;
}

/** Log bytes a lagging stdout may hold unsent; past it new lines are dropped (a stalled reader must not grow memory). */
export const LOG_MAX_PENDING_BYTES = 8 * 1024 * 1024;

/** A pino destination that never blocks the process and gives up for good on the first write error. */
export interface LogDestination {
  write(line: string): void;
  /** Calls `done` once every line accepted so far has been handed to the OS, or as soon as the output failed. */
  flush(done: () => void): void;
  /** True once a write failed (EPIPE: nobody reads any more); every later line is dropped. */
  readonly failed: boolean;
  /** Lines dropped because the reader lagged more than LOG_MAX_PENDING_BYTES. */
  readonly droppedLines: number;
}

/**
 * Writes log lines to `out` (stdout). pino's default destination is not used
 * on purpose: its exit hook flushes synchronously and retries EPIPE forever,
 * and its writes run on libuv's thread pool, which exit waits for; either one
 * kept the process alive after SIGTERM behind a closed or full pipe. A
 * process.stdout pipe writes without blocking the event loop and is not
 * flushed at exit, so a stop can always finish on time.
 */
export function createLogDestination(out: Writable = process.stdout): LogDestination {
  let failed = false;
  let droppedLines = 0;
  const waiting = new Set<() => void>();
  const fail = () => {
    failed = true;
    for (const done of waiting) done();
    waiting.clear();
  };
  // Without a listener an EPIPE on stdout would crash the process; logging is not worth a crash.
  out.on('error', fail);
  // A closed stream takes no more lines, and a write to it fails without an 'error' event.
  out.once('close', fail);
  return {
    write(line) {
      if (failed) return;
      if (out.writableLength > LOG_MAX_PENDING_BYTES) {
        droppedLines++;
        return;
      }
      try {
        out.write(line);
      } catch {
        // stdout on a file writes synchronously and throws (ENOSPC, EBADF).
        fail();
      }
    },
    flush(done) {
      if (failed || out.writableLength === 0) {
        process.nextTick(done);
        return;
      }
      let called = false;
      const once = () => {
        if (called) return;
        called = true;
        waiting.delete(once);
        done();
      };
      waiting.add(once);
      // Write callbacks run in order: this one runs once every earlier line is out.
      out.write('', once);
    },
    get failed() {
      return failed;
    },
    get droppedLines() {
      return droppedLines;
    },
  };
}

/** Creates the process logger; `pretty` defaults to whether stdout is a terminal. */
export function createLogger(level: string, pretty = process.stdout.isTTY === true): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: '[REDACTED]' }, base: { service: 'pollcast' } };
  if (pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  return pino(options, createLogDestination());
}

/** Resolves once `log` has written what it was given, or after `timeoutMs` (an exit must not wait on a stalled reader). */
export function flushLog(log: Logger, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    log.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A logger that drops everything (tests, embedding). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
