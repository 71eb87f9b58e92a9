/** No credential that passes through the gateway is ever logged, even at debug. */
import { afterEach, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startPollcast, type PollcastServer } from '../../src/server.ts';
import { createSimulator, type Simulator } from '../../src/simulator/index.ts';
import { JWT_SECRET, token } from '../security/helpers.ts';
import { api, KEY_A, OPERATOR_KEY } from './helpers.ts';
import { captureLog } from '../helpers/log-capture.ts';

let sim: Simulator | undefined;
let server: PollcastServer | undefined;
afterEach(async () => {
  await server?.close();
  await sim?.close();
});

it('forwarded requests, refusals and failures log no key, token or cookie at debug', async () => {
  sim = await createSimulator({ api: 'real', apiKey: OPERATOR_KEY, apiKeys: { [KEY_A]: 'org-a' } });
  sim.createSession('logged', { organisation: 'org-a', initialEvents: 2, imageBytes: 0 });
  const logged = captureLog('debug');
  const { log } = logged;
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, UPSTREAM_API_KEY: OPERATOR_KEY, AUTH_JWT_SECRET: JWT_SECRET, PASSTHROUGH: 'true', PASSTHROUGH_MAX_BODY_BYTES: '100', LOG_LEVEL: 'debug' });
  server = await startPollcast(config, { log, processMetrics: false });
  const jwt = await token(['*']);
  const base = `${server.url}/api/v2`;
  expect((await api(base, KEY_A, 'GET', `/sessions?access_token=${KEY_A}&status=running`)).status).toBe(200);
  expect((await api(base, undefined, 'GET', `/sessions/logged?access_token=${jwt}`, undefined, { cookie: `pollcast_token=${jwt}` })).status).toBe(401);
  expect((await api(base, KEY_A, 'POST', '/sessions/logged/messages', { message: 'x'.repeat(200) })).status).toBe(413);
  expect((await api(`${server.url}/sessions/logged`, jwt, 'GET', '/status')).status).toBe(200);
  await new Promise((r) => setTimeout(r, 50));
  expect(logged.text()).toContain('"msg":"request"');
  for (const secret of [KEY_A, OPERATOR_KEY, jwt, jwt.split('.')[2]!]) expect(logged.text()).not.toContain(secret);
});

it('the debug request log names the status the caller got from a forwarded call, not 200 for every one', async () => {
  // Fuzz audit, 7 Dec 2026: 401, 404, 409 and 422 from the upstream were logged as 200 (/metrics had them right).
  sim = await createSimulator({ api: 'real', apiKeys: { [KEY_A]: 'org-a' } });
  sim.createSession('lg', { organisation: 'org-a', initialEvents: 1, imageBytes: 0, finished: true });
  const logged = captureLog('debug');
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', UPSTREAM_URL: sim.url, AUTH: 'upstream', LOG_LEVEL: 'debug' });
  server = await startPollcast(config, { log: logged.log, processMetrics: false });
  const base = `${server.url}/api/v2`;
  const calls: Array<[string | undefined, string, string, number]> = [
    [KEY_A, 'GET', '/sessions/lg', 200],
    [undefined, 'GET', '/sessions/lg', 401],
    [KEY_A, 'GET', '/sessions/nope-1', 404],
    [KEY_A, 'POST', '/sessions/lg/pause', 409],
  ];
  for (const [key, method, path, status] of calls) expect((await api(base, key, method, path)).status, path).toBe(status);
  await new Promise((r) => setTimeout(r, 50));
  const requests = logged.text().split('\n').filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l) as { method: string; url: string; status: number });
  for (const [, method, path, status] of calls) {
    expect(requests.some((r) => r.method === method && r.url === `/api/v2${path}` && r.status === status), `${method} ${path} logged as ${status}`).toBe(true);
  }
});
