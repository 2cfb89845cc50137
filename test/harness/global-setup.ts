// Starts the real services a test project uses (PostgreSQL cluster, S3 server, Docker engine), once per test run,
// and stops them after the last project. Unit tests start nothing. Each e2e project gets the DockerInfo of its
// engine target (targets.ts): Compose v2 or v1, the local or the remote engine.
import type { TestProject } from 'vitest/node';
import { startPostgres } from './pg.ts';
import { startS3 } from './s3.ts';
import { startDocker } from './docker.ts';
import { E2E_PROJECTS, engineTargets, type Targets } from './targets.ts';

type Service = 'pg' | 's3' | 'docker';

/** The services a project's files inject, by project name: end-to-end projects are `e2e` and `e2e-…` (one per engine target). */
export function servicesFor(projectName: string): Service[] {
  if (projectName === 'integration') return ['pg', 's3'];
  // The e2e files also use the throwaway PostgreSQL (the path part over a real sshd, in URL mode).
  if (projectName === 'e2e' || projectName.startsWith('e2e-')) return ['docker', 's3', 'pg'];
  return [];
}

// vitest runs a root globalSetup once per project (unit, integration, e2e…) in the same process: each service
// starts the first time a project needs it, is shared by the projects after, and stops when the last project is done.
interface Shared {
  pg?: ReturnType<typeof startPostgres>;
  s3?: ReturnType<typeof startS3>;
  docker?: ReturnType<typeof startDocker>;
  targets?: Promise<Targets>;
  users: number;
}
const shared = globalThis as { __composeTasksServices?: Shared };

export default async function setup(project: TestProject) {
  shared.__composeTasksServices ??= { users: 0 };
  const entry = shared.__composeTasksServices;
  entry.users++;
  const teardown = async () => {
    if (--entry.users > 0) return;
    delete shared.__composeTasksServices;
    const targets = await entry.targets?.catch(() => undefined);
    await targets?.stop().catch(() => undefined);
    for (const started of [entry.docker, entry.s3, entry.pg]) {
      const service = await started?.catch(() => undefined);
      await service?.stop().catch(() => undefined);
    }
  };
  const wanted = new Set(servicesFor(project.name));
  try {
    if (wanted.has('pg')) entry.pg ??= startPostgres();
    if (wanted.has('s3')) entry.s3 ??= startS3();
    if (wanted.has('docker')) {
      entry.docker ??= startDocker();
      const docker = entry.docker;
      entry.targets ??= docker.then((d) => engineTargets(d.info, d.runId));
    }
    const [pg, s3, docker] = await Promise.all([
      wanted.has('pg') ? entry.pg : undefined,
      wanted.has('s3') ? entry.s3 : undefined,
      wanted.has('docker') ? entry.docker : undefined,
    ]);
    if (pg) project.provide('pg', pg.info);
    if (s3) project.provide('s3', s3.info);
    if (docker) {
      const target = E2E_PROJECTS[project.name];
      project.provide('docker', target ? await (await entry.targets!).info(target) : docker.info);
    }
  } catch (err) {
    // A setup that throws returns no teardown: give back this project's share now.
    await teardown();
    throw err;
  }
  return teardown;
}
