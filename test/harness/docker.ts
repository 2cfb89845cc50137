// The Docker engine for end-to-end tests: started if needed, with locally built stand-in images (no registry here).
import type { DockerInfo } from './services.ts';

export async function startDocker(): Promise<{ info: DockerInfo; stop: () => Promise<void> }> {
  return { info: { available: false, reason: 'not implemented yet' }, stop: async () => undefined };
}
