// Starts the real services once per test run (PostgreSQL cluster, S3 server, Docker engine) and stops them after.
// Each e2e project gets the DockerInfo of its engine target (targets.ts): Compose v2 or v1, the local or the remote engine.
import type { TestProject } from 'vitest/node';
import { startPostgres } from './pg.ts';
import { startS3 } from './s3.ts';
import { startDocker } from './docker.ts';
import { E2E_PROJECTS, engineTargets } from './targets.ts';

type Started = Awaited<ReturnType<typeof start>>;

async function start() {
  const [pg, s3, docker] = await Promise.all([startPostgres(), startS3(), startDocker()]);
  return { pg, s3, docker, targets: engineTargets(docker.info, docker.runId) };
}

// vitest runs a root globalSetup once per project (unit, integration, each e2e target) in the same process:
// share one set of services between them and stop it when the last project is done.
const shared = globalThis as { __composeTasksServices?: { started: Promise<Started>; users: number } };

export default async function setup(project: TestProject) {
  shared.__composeTasksServices ??= { started: start(), users: 0 };
  const entry = shared.__composeTasksServices;
  entry.users++;
  const { pg, s3, docker, targets } = await entry.started;
  project.provide('pg', pg.info);
  project.provide('s3', s3.info);
  const target = E2E_PROJECTS[project.name];
  project.provide('docker', target ? await targets.info(target) : docker.info);
  return async () => {
    if (--entry.users > 0) return;
    delete shared.__composeTasksServices;
    for (const stop of [targets.stop, docker.stop, s3.stop, pg.stop]) await stop().catch(() => undefined);
  };
}
