// describeE2E: an end-to-end suite that needs the Docker engine of this vitest project's target (see services.ts).
import { describe, inject } from 'vitest';

/**
 * Wraps `describe`: without an engine the suite is registered as skipped, the reason in its name (reported as skipped,
 * never as passing); in CI (CI=true) an unavailable engine fails the run instead.
 */
export function describeE2E(name: string, fn: () => void): void {
  const docker = inject('docker');
  if (docker.available) {
    describe(name, fn);
    return;
  }
  if (process.env.CI) {
    describe(name, () => {
      throw new Error(`end-to-end tests need Docker, and CI must run them: ${docker.reason ?? 'no engine'}`);
    });
    return;
  }
  describe.skip(`${name} (skipped: ${docker.reason ?? 'no Docker engine'})`, fn);
}
