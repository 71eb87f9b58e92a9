/** The token module's pure parts: where a token is read from, the cookie parser's edges, and the validity predicate. */
import { describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { cookieToken, createTokenVerifier, credentialFromCookie, tokenFrom } from '../../src/http/auth-token.ts';
import { UnauthorizedError } from '../../src/errors.ts';

const SECRET = 'unit-auth-token-secret-0123456789abcdef';
const creds = (c: { authorization?: string; accessToken?: string; cookie?: string }) => ({ authorization: c.authorization, accessToken: c.accessToken, cookie: c.cookie });

describe('tokenFrom', () => {
  it('reads the header, then the query, then the cookie', () => {
    expect(tokenFrom(creds({ authorization: 'Bearer h', accessToken: 'q', cookie: 'pt=c' }), 'pt')).toBe('h');
    expect(tokenFrom(creds({ accessToken: 'q', cookie: 'pt=c' }), 'pt')).toBe('q');
    expect(tokenFrom(creds({ accessToken: '', cookie: 'a=1; pt=c; b=2' }), 'pt')).toBe('c');
    expect(tokenFrom(creds({ cookie: 'a=1' }), 'pt')).toBeUndefined();
    // Another scheme (a page behind HTTP Basic) leaves the query and the cookie to be read; with neither, it is refused.
    expect(tokenFrom(creds({ authorization: 'Basic x', accessToken: 'q', cookie: 'pt=c' }), 'pt')).toBe('q');
    expect(tokenFrom(creds({ authorization: 'Basic x', cookie: 'pt=c' }), 'pt')).toBe('c');
    expect(() => tokenFrom(creds({ authorization: 'Basic x', cookie: 'a=1' }), 'pt')).toThrow(UnauthorizedError);
  });

  it('parses the Cookie header: quoted values, spaces, a name inside another, empty values, the first of duplicates', () => {
    expect(cookieToken('pt="abc"', 'pt')).toBe('abc');
    expect(cookieToken('  pt = abc ;x=1', 'pt')).toBe('abc');
    expect(cookieToken('xpt=no; pt_x=no', 'pt')).toBeUndefined();
    expect(cookieToken('pt=', 'pt')).toBeUndefined();
    expect(cookieToken('pt=one; pt=two', 'pt')).toBe('one');
    expect(cookieToken(undefined, 'pt')).toBeUndefined();
  });

  it('tells a cookie-borne credential from one the page sent itself', () => {
    expect(credentialFromCookie(creds({ cookie: 'pt=c' }), 'pt')).toBe(true);
    expect(credentialFromCookie(creds({ cookie: 'pt=c', authorization: 'Bearer h' }), 'pt')).toBe(false);
    // The browser adds Basic credentials on its own, as it does the cookie: the Origin check still applies.
    expect(credentialFromCookie(creds({ cookie: 'pt=c', authorization: 'Basic x' }), 'pt')).toBe(true);
    expect(credentialFromCookie(creds({ cookie: 'pt=c', accessToken: 'q' }), 'pt')).toBe(false);
    expect(credentialFromCookie(creds({ cookie: 'other=c' }), 'pt')).toBe(false);
  });
});

describe('TokenVerifier.isValid', () => {
  it('is true for a valid pollcast token and false for anything else, never throwing', async () => {
    const verifier = createTokenVerifier({ secret: SECRET });
    const good = await new SignJWT({ sessions: ['a'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
    const other = await new SignJWT({ sessions: ['a'] }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(`${SECRET}-other`));
    expect(await verifier.isValid(good)).toBe(true);
    expect(await verifier.isValid(other)).toBe(false);
    expect(await verifier.isValid('sk-upstream-api-key')).toBe(false);
    expect(await verifier.isValid('x'.repeat(10_000))).toBe(false);
  });
});
