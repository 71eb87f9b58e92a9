import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * `@durable-streams/server-conformance-tests` brings its own vitest (4); its
 * cases must register with the runner that runs (this project's), filtered
 * to the read-only ones: its `vitest` import is pointed at a shim.
 */
const conformanceShim = fileURLToPath(new URL('./test/durable/conformance-vitest.ts', import.meta.url));

export default defineConfig({
  plugins: [
    {
      name: 'durable-conformance-vitest',
      enforce: 'pre',
      resolveId(source, importer) {
        if (source === 'vitest' && importer?.includes('/@durable-streams/server-conformance-tests/')) return conformanceShim;
        return null;
      },
    },
  ],
  test: {
    server: { deps: { inline: ['@durable-streams/server-conformance-tests'] } },
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two files at once (vitest's default on a 2-core machine is one): the suite took 1,198 s one file at a time,
    // past CI's 20 minutes, and 623 s two at a time, all 822 tests passing (6 Dec 2026, this 2-core machine). Not
    // more: many tests time real sockets and loops, and were written against a machine not shared further.
    maxWorkers: 2,
    reporters: ['default', 'json'],
    outputFile: { json: 'test/artifacts/vitest-report.json' },
  },
});
