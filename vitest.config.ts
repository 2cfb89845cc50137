import { defineConfig } from 'vitest/config';

// End to end: every file runs once per engine target (test/harness/targets.ts): Compose v2 and v1 on the local engine,
// and the remote-engine files on a second engine reached over SSH, with both flavours. One Docker engine, one compose
// project at a time: every e2e project has one worker and the default group order, so vitest puts all their files into
// one sequential group (maxWorkers 1) that runs after the unit and integration files: one e2e file at a time, all targets.
const e2e = (name: string, include: string[], exclude: string[] = []) => ({
  extends: true as const,
  test: { name, include, exclude, fileParallelism: false, testTimeout: 300_000 },
});
const remoteFiles = ['test/e2e/remote*.test.ts'];

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
      e2e('e2e-v2', ['test/e2e/**/*.test.ts'], remoteFiles),
      // The path part over a real sshd runs under v2 only: the remote-engine files cover v1 over SSH.
      e2e('e2e-v1', ['test/e2e/**/*.test.ts'], [...remoteFiles, 'test/e2e/path-part-ssh.test.ts']),
      e2e('e2e-remote-v2', remoteFiles),
      e2e('e2e-remote-v1', remoteFiles),
    ],
  },
});
