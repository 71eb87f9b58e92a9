/** The words an upstream failure is shown in (status events' upstream_error, the session list's banner). */
import { describe, expect, it } from 'vitest';
import { complaintOf, failureWords } from '../../src/upstream/client.ts';

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

describe('complaintOf', () => {
  it('reads FastAPI\'s validation detail as loc: msg pairs, or a string detail, error or message', () => {
    const fastapi = JSON.stringify({ detail: [{ type: 'datetime_parsing', loc: ['query', 'created_after'], msg: 'Input should be a valid datetime', input: '2026-01-31x' }, { loc: ['query', 'size'], msg: 'too big' }] });
    expect(complaintOf(fastapi)).toBe('query.created_after: Input should be a valid datetime; query.size: too big');
    expect(complaintOf('{"detail":"Not allowed"}')).toBe('Not allowed');
    expect(complaintOf('{"error":"bad filter"}')).toBe('bad filter');
    expect(complaintOf('<html>bad</html>')).toBe('');
  });

  it('cuts it short and takes control characters out', () => {
    const long = complaintOf(JSON.stringify({ detail: `a\u0000b\nc${'x'.repeat(1000)}` }));
    expect(long.startsWith('a b c')).toBe(true);
    expect(long.length).toBeLessThanOrEqual(301);
  });
});
