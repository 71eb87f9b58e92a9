/** The request target as the forward route reads it: absolute form taken by its path, an empty host not taken. */
import { describe, expect, it } from 'vitest';
import { originForm } from '../../src/http/raw-request.ts';

describe('originForm', () => {
  it('takes an absolute-form target by its path and query, and leaves any other target as it is', () => {
    expect(originForm('http://h.example/api/v2/sessions?size=1')).toBe('/api/v2/sessions?size=1');
    expect(originForm('HTTPS://user@h.example:8443/api/v2')).toBe('/api/v2');
    expect(originForm('http://h.example')).toBe('/');
    expect(originForm('http://h.example?x=1')).toBe('/?x=1');
    expect(originForm('/api/v2/agents')).toBe('/api/v2/agents');
    expect(originForm('*')).toBe('*');
  });

  it('does not take a target with an empty host, which a URL parser reads with its first segment for the host', () => {
    // A review, 7 Dec 2026: `http:///internal/api/v2/…` was routed as `/api/v2/…` and sent as `/internal/api/v2/…`.
    expect(originForm('http:///internal/api/v2/sessions')).toBe('http:///internal/api/v2/sessions');
  });
});
