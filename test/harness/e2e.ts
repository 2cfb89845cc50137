// describeE2E: an end-to-end suite that runs against this project's engine target, or reports itself skipped (with the
// reason) where the target, or another piece the suite needs, is missing; in CI (CI=true) that is a failure, never a skip.
import { describe, inject, it } from 'vitest';
import type { DockerInfo } from './services.ts';

export interface E2EOptions {
  docker?: DockerInfo;
  /** What else the suite needs and this machine lacks (e.g. 'openssh-server'): each one named in the skip reason. */
  missing?: Array<string | false | undefined>;
}

export function describeE2E(name: string, fn: () => void, o: E2EOptions = {}): void {
  const docker = o.docker ?? inject('docker');
  const label = docker.target ? `${name} [${docker.target}]` : name;
  const missing = (o.missing ?? []).filter((m): m is string => Boolean(m));
  if (docker.available && !missing.length) {
    describe(label, fn);
    return;
  }
  const reason = docker.available ? `needs ${missing.join(', ')}` : (docker.reason ?? 'the Docker engine target is not available');
  if (process.env.CI) {
    describe(label, () => {
      it('has what it needs (CI must run the end-to-end tests)', () => {
        throw new Error(`end-to-end tests need this, and CI must run them: ${reason}`);
      });
    });
    return;
  }
  describe.skip(`${label} — skipped: ${reason}`, fn);
}
