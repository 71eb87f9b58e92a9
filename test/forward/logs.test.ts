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
