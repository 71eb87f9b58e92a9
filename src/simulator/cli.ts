import { parseArgs } from 'node:util';
import { createSimulator, DEFAULT_MAX_LIMIT, DEFAULT_MAX_WAIT_SECONDS, DEFAULT_SEED } from './index.ts';
import type { SimulatorOptions } from './types.ts';

/** If close() ever stalls, a signal must still end the process. */
const FORCED_EXIT_AFTER_MS = 5_000;

const HELP = `Usage: node src/simulator/cli.ts [options]

Simulated sessions API (GET /sessions/{id}/changes, /status; with --api real the rest of the Agent API) for pollcast.
Prints one JSON line {"simulator":"<API base URL>","api":"real|simple"} once listening.

Options:
  --api A           dialect: real (H Company's Agent API under /api/v2) or simple (default)
  --port N          port to listen on (default 0 = any free port)
  --host H          address to bind (default 127.0.0.1)
  --demo            run demo sessions demo-1, demo-2, ... (at least 3 live)
  --seed N          PRNG seed for demo sessions and events (default ${DEFAULT_SEED})
  --api-key K       require this upstream credential (401 otherwise)
  --api-keys L      keys scoped to an organisation, key=org[,key=org...]: a key sees its organisation's sessions only
  --auth-header H   header carrying the key raw (default: Authorization: Bearer K)
  --max-wait S      cap on wait_for_seconds (default ${DEFAULT_MAX_WAIT_SECONDS})
  --max-limit N     cap on limit (default ${DEFAULT_MAX_LIMIT})
  --help            print this help

Control API (JSON, no key, no faults): /_sim/sessions, /_sim/stats, /_sim/faults/...
`;

function fail(message: string): never {
  process.stderr.write(`simulator: ${message}\n`);
  process.exit(2);
}

function numberFlag(name: string, raw: string | undefined, integer: boolean): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) {
    fail(`--${name} must be a non-negative ${integer ? 'integer' : 'number'}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function parseOptions(): SimulatorOptions {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        api: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        demo: { type: 'boolean' },
        seed: { type: 'string' },
        'api-key': { type: 'string' },
        'api-keys': { type: 'string' },
        'auth-header': { type: 'string' },
        'max-wait': { type: 'string' },
        'max-limit': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    fail(`${(error as Error).message}\n\n${HELP}`);
  }
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const options: SimulatorOptions = { demo: values.demo ?? false };
  if (values.api !== undefined) {
    if (values.api !== 'real' && values.api !== 'simple') fail(`--api must be real or simple, got ${JSON.stringify(values.api)}`);
    options.api = values.api;
  }
  const port = numberFlag('port', values.port, true);
  const seed = numberFlag('seed', values.seed, true);
  const maxWait = numberFlag('max-wait', values['max-wait'], false);
  const maxLimit = numberFlag('max-limit', values['max-limit'], true);
  if (port !== undefined) options.port = port;
  if (seed !== undefined) options.seed = seed;
  if (maxWait !== undefined) options.maxWaitSeconds = maxWait;
  if (maxLimit !== undefined) options.maxLimit = maxLimit;
  if (values.host !== undefined) options.host = values.host;
  if (values['api-key'] !== undefined) options.apiKey = values['api-key'];
  if (values['auth-header'] !== undefined) options.authHeader = values['auth-header'];
  if (values['api-keys'] !== undefined) {
    const pairs = values['api-keys'].split(',').map((pair) => pair.split('='));
    if (pairs.some((p) => p.length !== 2 || p[0] === '' || p[1] === '')) fail(`--api-keys must be key=organisation[,key=organisation...], got ${JSON.stringify(values['api-keys'])}`);
    options.apiKeys = Object.fromEntries(pairs);
  }
  return options;
}

async function main(): Promise<void> {
  const simulator = await createSimulator(parseOptions());
  process.stdout.write(`${JSON.stringify({ simulator: simulator.url, api: simulator.api })}\n`);
  const stop = (): void => {
    setTimeout(() => process.exit(1), FORCED_EXIT_AFTER_MS).unref();
    simulator.close().then(
      () => {
        process.exitCode = 0;
      },
      (error: unknown) => fail(`close failed: ${String(error)}`),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
