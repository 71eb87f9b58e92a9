/** Request validation. */
import { describe, expect, it } from 'vitest';
import { parseIncludeEvents, parseIndex, parseLimit, parseSessionId, parseStartIndex, parseWaitSeconds } from '../../src/http/validate.ts';
import { parseChanges, parseStatusBody } from '../../src/upstream/parse.ts';

describe('validation', () => {
  it('accepts the contract pattern for ids and nothing else', () => {
    for (const ok of ['a', 'demo-1', 'A.b_c:d-e', '9' + 'x'.repeat(127)]) expect(parseSessionId(ok)).toBe(ok);
    for (const bad of ['', '-a', '.a', 'a/b', 'a b', 'ä', '9' + 'x'.repeat(128), undefined]) expect(() => parseSessionId(bad)).toThrow(/session id/);
  });
  it('parses indices as non-negative safe integers', () => {
    expect(parseIndex('x', '0')).toBe(0);
    expect(parseIndex('x', '42')).toBe(42);
    for (const bad of ['-1', '1.5', '1e3', '0x10', '', ' ', '9007199254740993', 'abc']) expect(() => parseIndex('x', bad)).toThrow(/non-negative integer/);
  });
  it('resumes after Last-Event-ID, else from from_index, else 0', () => {
    expect(parseStartIndex('9', '3')).toBe(10);
    expect(parseStartIndex(undefined, '3')).toBe(3);
    expect(parseStartIndex('', undefined)).toBe(0);
    expect(() => parseStartIndex('x', undefined)).toThrow(/Last-Event-ID/);
    // A start the order passes over is checked all the same.
    expect(() => parseStartIndex('9', 'abc')).toThrow(/from_index/);
    expect(() => parseStartIndex('9', undefined, '-1')).toThrow(/last_event_id/);
    expect(parseStartIndex(undefined, '3', '5')).toBe(6);
  });
  it('parses include_events (include_details its alias), limit and wait', () => {
    expect(parseIncludeEvents(undefined)).toBe(true);
    expect(parseIncludeEvents('false')).toBe(false);
    expect(parseIncludeEvents(undefined, 'false')).toBe(false);
    expect(parseIncludeEvents('true', 'true')).toBe(true);
    expect(() => parseIncludeEvents('true', 'false')).toThrow(/disagree/);
    // The upstream's own (pydantic) spellings, in any case; anything else names the parameter.
    for (const off of ['0', 'no', 'OFF', 'F', 'n', 'False']) expect(parseIncludeEvents(off), off).toBe(false);
    for (const on of ['1', 'yes', 'On', 'T', 'y', 'TRUE']) expect(parseIncludeEvents(on), on).toBe(true);
    expect(parseIncludeEvents(undefined, 'no')).toBe(false);
    for (const bad of ['maybe', '2', 'nope', 'falsey', ' true', 'tru']) expect(() => parseIncludeEvents(bad), bad).toThrow(/include_events must be true or false/);
    expect(() => parseIncludeEvents(undefined, 'nein')).toThrow(/include_details/);
    expect(parseLimit(undefined, 100, 1000)).toBe(100);
    expect(parseLimit('5000', 100, 1000)).toBe(1000);
    expect(() => parseLimit('0', 100, 1000)).toThrow();
    expect(parseWaitSeconds('2.5', 60)).toBe(2.5);
    expect(parseWaitSeconds('600', 60)).toBe(60);
    expect(parseWaitSeconds('99999999999', 60)).toBe(60);
    expect(parseLimit('100000000000000000000', 100, 1000)).toBe(1000);
    expect(() => parseWaitSeconds('-1', 60)).toThrow();
  });
});

describe('upstream body checks', () => {
  const good = { status: 'running', started_at: null, finished_at: null, error: null, answer: null, metrics: {}, new_events: [{ type: 'a', data: 1, timestamp: 't' }] };
  it('accepts a well-formed answer', () => {
    expect(parseChanges(good).ok).toBe(true);
    expect(parseStatusBody({ status: 'x' }).ok).toBe(true);
    expect(parseStatusBody({ status: 'x', error: 3 }).ok).toBe(false);
  });
  it('refuses wrong shapes with a reason', () => {
    for (const bad of [null, [], 'x', { ...good, status: 1 }, { ...good, new_events: {} }, { ...good, new_events: [{ data: 1 }] }, { ...good, metrics: [] }, { ...good, finished_at: 5 }]) {
      const r = parseChanges(bad);
      expect(r.ok).toBe(false);
    }
  });
  it('keeps the fields it does not know', () => {
    const r = parseChanges({ ...good, outcome: 'success', error_code: null });
    expect(r.ok && r.value.top.extra).toEqual({ outcome: 'success', error_code: null });
  });
});
