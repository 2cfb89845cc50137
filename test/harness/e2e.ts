// describeE2E: a suite that needs the Docker engine of this project's target (inject('docker')).
// Minimal form of the interface the `engine` branch provides: skipped (reported, with the reason in its name)
// when the engine is unavailable; in CI unavailability is a failure.
import { describe, inject, it } from 'vitest';

export function describeE2E(name: string, fn: () => void): void {
  const docker = inject('docker');
  if (docker.available) {
    describe(name, fn);
    return;
  }
  if (process.env.CI) {
    describe(name, () => {
      it('needs a Docker engine (CI must run end-to-end tests)', () => {
        throw new Error(`no Docker engine: ${docker.reason ?? 'unavailable'}`);
      });
    });
    return;
  }
  describe.skip(`${name} (skipped: ${docker.reason ?? 'no Docker engine'})`, fn);
}
