/**
 * The process instances that cluster and chaos tests start: a port that another process took between
 * `freePort()` and the child's bind is noticed (that process may answer /healthz too), and an instance that died
 * on its own is reported at stop, not waited for.
 */
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/harness.ts';
import { PortTakenError, startInstance, startInstanceOnFreePort, type Instance } from './instance.ts';

const ENV = { UPSTREAM_URL: 'http://127.0.0.1:9/api/v2', UPSTREAM_API_KEY: 'k', AUTH: 'none' };
const started: Instance[] = [];
afterEach(async () => {
  for (const i of started.splice(0)) await i.kill();
});

describe('process instances of the cluster and chaos tests', () => {
  it('a port taken by another server that answers /healthz is refused as taken, not accepted as pollcast, whether it answers at once or after the child is gone', async () => {
    for (const delayMs of [0, 900]) {
      const foreign = createServer((_req, res) => void setTimeout(() => res.setHeader('content-type', 'application/json').end('{"status":"ok"}'), delayMs));
      await new Promise<void>((r) => foreign.listen(0, '127.0.0.1', r));
      try {
        const port = (foreign.address() as { port: number }).port;
        const outcome = await startInstance('process', port, ENV).then(
          (inst) => (started.push(inst), 'started'),
          (err: unknown) => err,
        );
        expect(outcome, `answering after ${delayMs} ms`).toBeInstanceOf(PortTakenError);
      } finally {
        foreign.closeAllConnections();
        foreign.close();
      }
    }
  }, 30_000);

  it('on a free port: the instance answers, and one that died on its own fails its stop at once, naming it', async () => {
    const { instance, port } = await startInstanceOnFreePort('process', ENV);
    started.push(instance);
    expect(instance.url).toBe(`http://127.0.0.1:${port}`);
    expect((await fetch(`${instance.url}/healthz`)).status).toBe(200);
    process.kill(instance.pid!, 'SIGKILL');
    // Gone once signal 0 finds no process (reaped: node has its exit by then).
    await eventually(
      async () => {
        try {
          process.kill(instance.pid!, 0);
          return false;
        } catch {
          return true;
        }
      },
      5000,
      'the process gone',
    );
    const t0 = performance.now();
    await expect(instance.stop()).rejects.toThrow(/exited \(SIGKILL\) before stop/);
    expect(performance.now() - t0).toBeLessThan(5000);
  }, 20_000);
});
