import { describe, expect, it } from 'vitest';
import { forwardRequestHeaders, forwardResponseHeaders, withoutCookies, withoutQueryParams } from '../../src/http/forward-headers.ts';
import { nudgedSession } from '../../src/http/forward-route.ts';

const from = { clientIp: '10.0.0.9', proto: 'http', host: 'pollcast.example', trustForwarded: false };

describe('forward-headers', () => {
  it('cuts one cookie out of Cookie and keeps the others in order', () => {
    expect(withoutCookies('a=1; pollcast_token=xyz; b=2', new Set(['pollcast_token']))).toBe('a=1; b=2');
    expect(withoutCookies('pollcast_token=xyz', new Set(['pollcast_token']))).toBeUndefined();
    expect(withoutCookies('pollcast_token_other=1;pollcast_token=2', new Set(['pollcast_token']))).toBe('pollcast_token_other=1');
  });

  it('removes a query parameter and keeps every other byte of the raw query', () => {
    expect(withoutQueryParams('status=a&access_token=t&status=b&x=%20+y', new Set(['access_token']))).toBe('status=a&status=b&x=%20+y');
    expect(withoutQueryParams('access%5Ftoken=t&z=1', new Set(['access_token']))).toBe('z=1');
    expect(withoutQueryParams('status=a', new Set(['access_token']))).toBeUndefined();
    // Names decoded as URLSearchParams decodes them: a malformed escape is U+FFFD, `+` a space.
    expect(withoutQueryParams('%FF=t&a+b=1&z=2', new Set(['\uFFFD', 'a b']))).toBe('z=2');
  });

  it('drops hop-by-hop, Connection-named, Host, Expect and pseudo headers; appends to X-Forwarded-For', () => {
    const raw = [':authority', 'h', 'Host', 'pollcast.example', 'Connection', 'close, X-Secret-Hop', 'X-Secret-Hop', '1', 'TE', 'trailers', 'Expect', '100-continue', 'Accept', 'a', 'X-Forwarded-For', '1.2.3.4', 'accept', 'b', 'Authorization', 'Bearer k'];
    expect(forwardRequestHeaders(raw, from, { cookieName: 'pollcast_token', dropAuthorization: false })).toEqual([
      'Accept', 'a', 'accept', 'b', 'Authorization', 'Bearer k',
      'x-forwarded-for', '1.2.3.4, 10.0.0.9', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'pollcast.example',
    ]);
    expect(forwardRequestHeaders(raw, from, { cookieName: 'pollcast_token', dropAuthorization: true })).not.toContain('Authorization');
  });

  it('keeps a trusted proxy\'s X-Forwarded-Proto and -Host, and replaces an untrusted caller\'s', () => {
    const raw = ['X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'app.example'];
    expect(forwardRequestHeaders(raw, { ...from, trustForwarded: true }, { cookieName: 'c', dropAuthorization: false })).toEqual(['x-forwarded-for', '10.0.0.9', 'x-forwarded-proto', 'https', 'x-forwarded-host', 'app.example']);
    expect(forwardRequestHeaders(raw, from, { cookieName: 'c', dropAuthorization: false })).toEqual(['x-forwarded-for', '10.0.0.9', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'pollcast.example']);
  });

  it('keeps other proxy-written headers (Forwarded, X-Real-IP, X-Forwarded-Port/-Prefix, …) from a trusted proxy only, and route overrides (X-Original-URL, …) never', () => {
    const proxied = ['Forwarded', 'for=1.2.3.4;proto=https', 'X-Real-IP', '1.2.3.4', 'True-Client-IP', '1.2.3.4', 'X-Cluster-Client-IP', '1.2.3.4', 'X-Forwarded-Port', '443', 'X-Forwarded-Prefix', '/admin', 'X-Original-Host', 'admin.example', 'Front-End-Https', 'on'];
    const overrides = ['X-Original-URL', '/api/v2/sessions/bad id/x', 'x-rewrite-url', '/x', 'X-Forwarded-Uri', '/admin', 'X-Envoy-Original-Path', '/admin', 'X-Original-URI', '/admin', 'X-Forwarded-Method', 'TRACE'];
    const raw = [...proxied, ...overrides, 'Accept', 'a'];
    const sent = ['x-forwarded-for', '10.0.0.9', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'pollcast.example'];
    expect(forwardRequestHeaders(raw, from, { cookieName: 'c', dropAuthorization: false })).toEqual(['Accept', 'a', ...sent]);
    expect(forwardRequestHeaders(raw, { ...from, trustForwarded: true }, { cookieName: 'c', dropAuthorization: false })).toEqual([...proxied, 'Accept', 'a', ...sent]);
  });

  it('returns the answer headers with repeats as arrays, less hop-by-hop ones (and the upstream\'s CORS when pollcast has its own)', () => {
    const raw = ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Transfer-Encoding', 'chunked', 'Connection', 'x-drop', 'X-Drop', '1', 'Location', '/x', 'Access-Control-Allow-Origin', '*'];
    expect(forwardResponseHeaders(raw, false)).toEqual({ 'set-cookie': ['a=1', 'b=2'], location: '/x', 'access-control-allow-origin': '*' });
    expect(forwardResponseHeaders(raw, true)).toEqual({ 'set-cookie': ['a=1', 'b=2'], location: '/x' });
  });

  it('names the session of a nudging write only', () => {
    expect(nudgedSession('POST', ['sessions', 'abc', 'pause'])).toBe('abc');
    expect(nudgedSession('DELETE', ['sessions', 'abc'])).toBe('abc');
    expect(nudgedSession('GET', ['sessions', 'abc', 'pause'])).toBeUndefined();
    expect(nudgedSession('POST', ['sessions', 'abc', 'share'])).toBeUndefined();
    expect(nudgedSession('POST', ['sessions', 'abc', 'pause', ''])).toBeUndefined();
    expect(nudgedSession('DELETE', ['sessions', 'abc', 'share'])).toBeUndefined();
    expect(nudgedSession('POST', ['skills', 'abc', 'pause'])).toBeUndefined();
    expect(nudgedSession('DELETE', ['sessions', ''])).toBeUndefined();
  });
});
