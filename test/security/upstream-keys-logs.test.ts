/**
 * AUTH=upstream keeps callers' keys out of the logs: the real CLI at
 * LOG_LEVEL=debug, without UPSTREAM_API_KEY (its loops run on the callers'
 * keys), is sent keys every way a caller may send them, accepted, refused,
 * revoked and unknown, and its whole output must not contain any of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { eventually, record } from '../helpers/harness.ts';
import { recordMany, sessionQuery } from '../helpers/multi.ts';
import { startCli, type RunningCli } from './helpers.ts';

const KEY_A = 'sk-log-org-a-Rf6Ty2Pm8Wq4';
const KEY_B = 'sk-log-org-b-Hs9Dk3Vn5Zx7';
const UNKNOWN = 'sk-log-unknown-Lc1Bj4Gt6Qy8';
const KEYS = [KEY_A, KEY_B, UNKNOWN];

let sim: Simulator;
let cli: RunningCli;

beforeAll(async () => {
  sim = await createSimulator({ api: 'real', apiKeys: { [KEY_A]: 'org-a', [KEY_B]: 'org-b' } });
  sim.createSession('log-a', { organisation: 'org-a', initialEvents: 3, finished: true });
  sim.createSession('log-a2', { organisation: 'org-a', initialEvents: 2, finished: true });
  sim.createSession('log-b', { organisation: 'org-b', emitEveryMs: 100, emitCount: 30 });
  cli = await startCli({ UPSTREAM_URL: sim.url, AUTH: 'upstream', AUTH_UPSTREAM_CACHE_SECONDS: '1', LOG_LEVEL: 'debug', MAX_STREAMS_PER_IP: '0', RATE_LIMIT_PER_IP: '0' });
});
afterAll(async () => {
  await cli?.stop();
  await sim?.close();
});

describe('keys never reach the logs', () => {
  it('at debug, whatever the key and however it is sent', async () => {
    const auth = (key: string) => ({ authorization: `Bearer ${key}` });
    expect((await record(`${cli.url}/sessions/log-a/events?access_token=${KEY_A}`).ended()).last_index).toBe(2);
    expect((await record(`${cli.url}/sessions/log-a2/events?access%5Ftoken=${KEY_A}`).ended()).last_index).toBe(1);
    const many = recordMany(`${cli.url}/events?${sessionQuery(['log-a', 'log-a2'])}`, ['log-a', 'log-a2'], { headers: auth(KEY_A) });
    await many.allEnded();
    expect((await fetch(`${cli.url}/api/v2/sessions/log-a/changes?wait_for_seconds=0`, { headers: auth(KEY_A) })).status).toBe(200);
    expect((await fetch(`${cli.url}/sessions/log-a/status?access_token=${KEY_A}`)).status).toBe(200);
    // Refused: another organisation's session, an unknown key, a key in the query of a refused stream.
    expect((await fetch(`${cli.url}/sessions/log-b/events?access_token=${KEY_A}`)).status).toBe(404);
    expect((await fetch(`${cli.url}/api/v2/sessions/log-a/status`, { headers: auth(UNKNOWN) })).status).toBe(401);
    expect((await fetch(`${cli.url}/events?session=log-a&access_token=${UNKNOWN}`)).status).toBe(401);
    // Malformed forms of the parameter (not read as a key, 401), their requests logged at debug all the same.
    for (const q of [`a=1;access_token=${KEY_A}`, `access_token%3D${KEY_A}`, `access_token[]=${KEY_A}`, `+access_token=${KEY_A}`, `access_token+=${KEY_A}`]) {
      expect((await fetch(`${cli.url}/sessions/log-a/status?${q}`)).status, q).toBe(401);
    }
    // A key after `;` in the path (no route reads it there): not in the log, nor in the 404's message.
    const matrix = await fetch(`${cli.url}/sessions/log-a/events;access_token=${KEY_A}`);
    expect(matrix.status).toBe(404);
    expect(await matrix.text()).toContain(';access_token=[REDACTED]');
    // Keys under other names a caller may put them under, on a forwarded call.
    for (const name of ['key', 'password', 'client_secret', 'X-Amz-Signature', 'x_api_key', 'api-key[]', 'api-key+', 'api%2Dkey[0]', 'key[]', 'authorization', 'jwt', 'pw']) {
      await (await fetch(`${cli.url}/api/v2/sessions?${name}=${KEY_B}`, { headers: auth(KEY_A) })).body?.cancel();
    }
    // Forwarded to the upstream (pass-through): the key goes there, and nowhere else.
    expect((await fetch(`${cli.url}/api/v2/sessions`, { headers: auth(KEY_A) })).status).toBe(200);
    await fetch(`${cli.url}/api/v2/sessions/log-a?access_token=${KEY_A}`);
    // A loop that runs on a key revoked meanwhile (it is refused upstream, and the stream is ended).
    const watcher = record(`${cli.url}/sessions/log-b/events`, { headers: auth(KEY_B) });
    await watcher.until((r) => r.indices().length >= 3);
    sim.revokeKey(KEY_B);
    // Its stream is ended on the renewal, and EventSource's reconnect is refused (it then stops for good).
    await eventually(() => watcher.es.readyState === watcher.es.CLOSED, 15_000, 'the revoked viewer to be shut out');
    watcher.close();
    expect((await fetch(`${cli.url}/sessions/log-b/changes`, { headers: auth(KEY_B) })).status).toBe(401);

    const out = cli.output();
    // The output is the debug log (a failing check must not pass on an empty or quieter log).
    expect(out).toMatch(/"level":20/);
    expect(out).toContain('/sessions/log-a/status?access_token=[REDACTED]');
    for (const key of KEYS) expect(out, 'a key appears in the log').not.toContain(key);
    // Nor its parts (a key split or re-encoded).
    for (const key of KEYS) expect(out).not.toContain(key.slice(-10));
  }, 60_000);
});
