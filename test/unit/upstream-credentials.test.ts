/** Callers' upstream credentials: where a key is read, how it is sent on, and the bounded set a loop runs on. */
import { describe, expect, it } from 'vitest';
import { callerCredential, MAX_KEY_LENGTH } from '../../src/http/auth-upstream.ts';
import { UnauthorizedError } from '../../src/errors.ts';
import { CALLER_CREDENTIALS_MAX, CallerCredentials, upstreamCredential } from '../../src/upstream/credential.ts';

const none = { authorization: undefined, accessToken: undefined, cookie: undefined };

describe('callerCredential', () => {
  it('reads Authorization: Bearer, else access_token, and sends it on as Authorization: Bearer', () => {
    const byHeader = callerCredential({ ...none, authorization: 'bearer   sk-1 ' }, undefined)!;
    expect([byHeader.header, byHeader.value]).toEqual(['authorization', 'Bearer sk-1']);
    const byQuery = callerCredential({ ...none, accessToken: 'sk-1' }, undefined)!;
    // The same key however it came: one digest, one verdict, one place in a loop's set.
    expect(byQuery.digest).toBe(byHeader.digest);
    expect(callerCredential(none, undefined)).toBeUndefined();
    expect(callerCredential({ ...none, accessToken: '' }, undefined)).toBeUndefined();
  });

  it('with UPSTREAM_AUTH_HEADER, prefers that header and sends every key there, raw', () => {
    const both = callerCredential({ ...none, keyHeader: 'sk-h', authorization: 'Bearer sk-b' }, 'X-API-Key')!;
    expect([both.header, both.value]).toEqual(['x-api-key', 'sk-h']);
    const bearer = callerCredential({ ...none, authorization: 'Bearer sk-b' }, 'X-API-Key')!;
    expect([bearer.header, bearer.value]).toEqual(['x-api-key', 'sk-b']);
    const query = callerCredential({ ...none, accessToken: 'sk-q' }, 'X-API-Key')!;
    expect([query.header, query.value]).toEqual(['x-api-key', 'sk-q']);
  });

  it('refuses with 401 what cannot be a key, before anything is sent', () => {
    for (const c of [{ authorization: 'Basic abc' }, { authorization: 'Bearer' }, { accessToken: 'a b' }, { accessToken: 'caf\u00e9' }, { accessToken: 'x\r\nInjected: 1' }, { accessToken: 'k'.repeat(MAX_KEY_LENGTH + 1) }]) {
      expect(() => callerCredential({ ...none, ...c }, undefined), JSON.stringify(c).slice(0, 60)).toThrow(UnauthorizedError);
    }
    expect(callerCredential({ ...none, accessToken: 'k'.repeat(MAX_KEY_LENGTH) }, undefined)).toBeDefined();
  });

  it('never shows the key when serialised or inspected', () => {
    const c = callerCredential({ ...none, accessToken: 'sk-secret-Qw7' }, undefined)!;
    expect(JSON.stringify(c)).not.toContain('sk-secret-Qw7');
    expect(Object.keys(c)).not.toContain('value');
    expect(c.value).toBe('Bearer sk-secret-Qw7');
  });
});

describe('CallerCredentials', () => {
  const cred = (i: number) => upstreamCredential('authorization', `Bearer sk-${i}`);

  it('uses the newest accepted, moves a re-accepted one to the front, and forgets the oldest past its bound', () => {
    const set = new CallerCredentials();
    expect(set.current()).toBeUndefined();
    for (let i = 0; i < CALLER_CREDENTIALS_MAX + 2; i++) set.add(cred(i));
    expect(set.size).toBe(CALLER_CREDENTIALS_MAX);
    expect(set.current()!.digest).toBe(cred(CALLER_CREDENTIALS_MAX + 1).digest);
    expect(set.drop(cred(0).digest)).toBe(false);
    set.add(cred(3));
    expect(set.current()!.digest).toBe(cred(3).digest);
    expect(set.drop(cred(3).digest)).toBe(true);
    expect(set.current()!.digest).toBe(cred(CALLER_CREDENTIALS_MAX + 1).digest);
    set.clear();
    expect(set.size).toBe(0);
  });
});
