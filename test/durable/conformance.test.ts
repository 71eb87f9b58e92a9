/**
 * The read-side cases of `@durable-streams/server-conformance-tests` that
 * need no writes, run against pollcast (the simulator in real-API mode as
 * its upstream). Every other case of the suite starts by creating or
 * appending to a stream (PUT/POST), which a read-only server refuses (405):
 * docs/durable-streams.md lists what runs and why the rest cannot.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { setConformanceFilter } from './conformance-vitest.ts';
import { startBridge, type Bridge } from '../helpers/harness.ts';
import { startRewriteProxy, type RewriteProxy } from '../helpers/durable.ts';
import { ONE_ADDRESS_ENV } from '../resilience/helpers.ts';

/** The suite's cases that read only (found by reading its source: every other case writes first), by full name. */
export const READ_ONLY_CASES = [
  'Browser Security Headers > should include security headers on error responses',
  'HEAD Metadata > should return 404 for non-existent stream',
  'Offset Validation and Resumability > should return 404 for offset=now on non-existent stream',
  'Offset Validation and Resumability > should return 404 for offset=now with long-poll on non-existent stream',
  'Offset Validation and Resumability > should return 404 for offset=now with SSE on non-existent stream',
  'Caching and ETag > should allow If-None-Match in CORS preflight responses',
];

const registered: string[] = [];
setConformanceFilter((name) => {
  const runs = READ_ONLY_CASES.includes(name);
  if (runs) registered.push(name);
  return runs;
});

let bridge: Bridge;
let proxy: RewriteProxy;
const options = { baseUrl: '', longPollTimeoutMs: 20_000 };

beforeAll(async () => {
  bridge = await startBridge({ ...ONE_ADDRESS_ENV, CORS_ORIGINS: '*' }, { api: 'real' });
  // The suite names its streams /v1/stream/<name>; pollcast's are /v1/stream/sessions/<id>.
  proxy = await startRewriteProxy(bridge.url, (path) => path.replace(/^\/v1\/stream\/(?!sessions\/)/, '/v1/stream/sessions/'));
  options.baseUrl = proxy.url;
});

afterAll(async () => {
  await proxy?.close();
  await bridge?.close();
});

describe('Durable Streams server conformance (read-only cases)', () => {
  runConformanceTests(options);
});

describe('the conformance selection', () => {
  it('registered every read-only case, each once (a renamed case in a new suite version shows here)', () => {
    expect([...registered].sort()).toEqual([...READ_ONLY_CASES].sort());
  });

  it('reached pollcast: the cases asked the upstream about the sessions they name', () => {
    const asked = Object.keys(bridge.sim.allStats());
    expect(asked.some((id) => id.startsWith('head-404-test-'))).toBe(true);
  });
});
