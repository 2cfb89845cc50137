import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['test/harness/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 600_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', setupFiles: ['test/harness/tmp-setup.ts'], include: ['test/unit/**/*.test.ts', 'test/cli/**/*.test.ts'] },
      },
      {
        extends: true,
        test: { name: 'integration', setupFiles: ['test/harness/tmp-setup.ts'], include: ['test/integration/**/*.test.ts'] },
      },
      // One Docker engine, one compose project at a time: end-to-end files run one after another.
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], fileParallelism: false, testTimeout: 300_000 } },
    ],
  },
});
