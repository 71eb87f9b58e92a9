/** The words an upstream failure is shown in (status events' upstream_error, the session list's banner). */
import { describe, expect, it } from 'vitest';
import { failureWords, queryComplaint } from '../../src/upstream/client.ts';

describe('failureWords', () => {
  it('says undici\'s timeouts and socket errors in words, system codes kept beside them', () => {
    expect(failureWords('UND_ERR_HEADERS_TIMEOUT', 10_000, 10_000)).toBe('no answer within 10000 ms');
    expect(failureWords('UND_ERR_BODY_TIMEOUT', 35_000, 10_000)).toBe('the answer stalled for 10000 ms');
    expect(failureWords('UND_ERR_SOCKET', 1, 1)).toBe('connection lost');
    expect(failureWords('ECONNREFUSED', 1, 1)).toBe('connection refused (ECONNREFUSED)');
    // A code it does not know is shown as it is.
    expect(failureWords('EWHATEVER', 1, 1)).toBe('EWHATEVER');
  });
});

describe('queryComplaint', () => {
  const names = new Set(['created_after', 'status']);
  it('reads FastAPI\'s rows about the named query parameters as name: msg pairs, and nothing else', () => {
    const fastapi = JSON.stringify({ detail: [
      { type: 'datetime_parsing', loc: ['query', 'created_after'], msg: 'Input should be a valid datetime', input: '2026-01-31x' },
      { loc: ['query', 'size'], msg: 'pollcast asked for this one' },
      { loc: ['header', 'authorization'], msg: 'malformed API key sk-operator-SECRET' },
    ] });
    expect(queryComplaint(fastapi, names)).toBe('created_after: Input should be a valid datetime');
  });

  it('is empty for any other body: a string detail, error or message is never shown (it may speak of the key)', () => {
    expect(queryComplaint('{"detail":"malformed API key sk-operator-SECRET"}', names)).toBe('');
    expect(queryComplaint('{"error":"malformed API key sk-operator-SECRET"}', names)).toBe('');
    expect(queryComplaint('<html>bad</html>', names)).toBe('');
  });

  it('cuts it short and takes control and format characters out', () => {
    const long = queryComplaint(JSON.stringify({ detail: [{ loc: ['query', 'status'], msg: `a\u0000b\u202ec\u0085d${'x'.repeat(1000)}` }] }), names);
    expect(long.startsWith('status: a b c d')).toBe(true);
    expect(long.length).toBeLessThanOrEqual(301);
  });
});
