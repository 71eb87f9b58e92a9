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
];

/** Replaces the value of `access_token` in a URL or path so request logs never carry a token. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]access_token=)[^&#]*/gi, '$1[REDACTED]');
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
