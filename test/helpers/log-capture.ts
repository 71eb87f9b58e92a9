/**
 * A pino logger whose output the test reads: with pollcast's own redaction
 * (src/log.ts REDACT_PATHS), so a test that looks for a leaked key sees what
 * production would write.
 */
import pino, { type Logger } from 'pino';
import { Writable } from 'node:stream';
import { REDACT_PATHS } from '../../src/log.ts';

/** A captured log line, as far as tests look at it. */
export interface LogLine {
  level: number;
  msg: string;
}

/** What a captured logger wrote. */
export interface CapturedLog {
  log: Logger;
  /** Everything written, as text. */
  text(): string;
  /** Every line, parsed. */
  lines(): LogLine[];
}

/** A logger at `level` writing to memory. */
export function captureLog(level: string): CapturedLog {
  let written = '';
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      written += chunk.toString();
      done();
    },
  });
  const log = pino({ level, redact: { paths: REDACT_PATHS, censor: '[REDACTED]' } }, out);
  return {
    log,
    text: () => written,
    lines: () => written.split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine),
  };
}
