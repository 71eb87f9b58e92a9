/**
 * The process instances that cluster and chaos tests start: a port that another process took between
 * `freePort()` and the child's bind is noticed (that process may answer /healthz too), and an instance that died
 * on its own is reported at stop, not waited for.
 */
import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { PortTakenError, startInstance, startInstanceOnFreePort, type Instance } from './instance.ts';

const ENV = { UPSTREAM_URL: 'http://127.0.0.1:9/api/v2', UPSTREAM_API_KEY: 'k', AUTH: 'none' };
const started: Instance[] = [];
afterEach(async () => {
  for (const i of started.splice(0)) await i.kill();
});

describe('process instances of the cluster and chaos tests', () => {
  it('a port taken by another server that answers /healthz is refused as taken, not accepted as pollcast', async () => {
    const foreign = createServer((_req, res) => res.setHeader('content-type', 'application/json').end('{"status":"ok"}'));
    await new Promise<void>((r) => foreign.listen(0, '127.0.0.1', r));
    try {
      const port = (foreign.address() as { port: number }).port;
      const outcome = await startInstance('process', port, ENV).then(
        (inst) => (started.push(inst), 'started'),
        (err: unknown) => err,
      );
      expect(outcome).toBeInstanceOf(PortTakenError);
    } finally {
      foreign.close();
    }
  }, 20_000);

  it('on a free port: the instance answers, and one that died on its own fails its stop at once, naming it', async () => {
    const { instance, port } = await startInstanceOnFreePort('process', ENV);
    started.push(instance);
    expect(instance.url).toBe(`http://127.0.0.1:${port}`);
    expect((await fetch(`${instance.url}/healthz`)).status).toBe(200);
    process.kill(instance.pid!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    await expect(instance.stop()).rejects.toThrow(/exited \(SIGKILL\) before stop/);
    expect(performance.now() - t0).toBeLessThan(5000);
  }, 20_000);
});
