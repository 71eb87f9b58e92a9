/** Structured JSON logs (pino), pretty in a terminal, with secrets redacted. */
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

/** Query parameters whose value is a secret (compared decoded and lower-cased). */
export const SECRET_QUERY_PARAMS: ReadonlySet<string> = new Set(['access_token']);

function isSecretParam(rawName: string): boolean {
  let name = rawName;
  try {
    // hono decodes parameter names, so `access%5Ftoken=` is a token too.
    name = decodeURIComponent(rawName.replace(/\+/g, ' '));
  } catch {
    // A malformed escape: judge the raw name.
  }
  return SECRET_QUERY_PARAMS.has(name.toLowerCase());
}

/** Replaces the value of `access_token` in a URL or path (however its name is encoded) so request logs never carry a token. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return url;
  const hash = url.indexOf('#', q);
  const end = hash === -1 ? url.length : hash;
  const query = url
    .slice(q + 1, end)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq === -1 ? pair : pair.slice(0, eq);
      return isSecretParam(name) ? `${name}=[REDACTED]` : pair;
    })
    .join('&');
  return `${url.slice(0, q + 1)}${query}${url.slice(end)}`;
}

/** Creates the process logger; `pretty` defaults to whether stdout is a terminal. */
export function createLogger(level: string, pretty = process.stdout.isTTY === true): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: '[REDACTED]' }, base: { service: 'pollcast' } };
  if (pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' } } });
  }
  return pino(options);
}

/** A logger that drops everything (tests, embedding). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
