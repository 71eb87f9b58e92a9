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
    reporters: ['default', 'json'],
    outputFile: { json: 'test/artifacts/vitest-report.json' },
  },
});
