// describeE2E: an end-to-end suite that runs against this project's engine target, or reports itself skipped (with the
// reason) where the target cannot run; in CI (CI=true) an unavailable target is a failure, never a skip.
import { describe, inject, it } from 'vitest';
import type { DockerInfo } from './services.ts';

export function describeE2E(name: string, fn: () => void, docker: DockerInfo = inject('docker')): void {
  const label = docker.target ? `${name} [${docker.target}]` : name;
  if (docker.available) {
    describe(label, fn);
    return;
  }
  const reason = docker.reason ?? 'the Docker engine target is not available';
  if (process.env.CI) {
    describe(label, () => {
      it('has its engine target (CI must run the end-to-end tests)', () => {
        throw new Error(`end-to-end tests need this engine target, and CI must run them: ${reason}`);
      });
    });
    return;
  }
  describe.skip(`${label} — skipped: ${reason}`, fn);
}
