// Starts the real services once per test run (PostgreSQL cluster, S3 server, Docker engine) and stops them after.
import type { TestProject } from 'vitest/node';
import { startPostgres } from './pg.ts';
import { startS3 } from './s3.ts';
import { startDocker } from './docker.ts';

export default async function setup(project: TestProject) {
  const stops: Array<() => Promise<void>> = [];
  const [pg, s3, docker] = await Promise.all([startPostgres(), startS3(), startDocker()]);
  stops.push(pg.stop, s3.stop, docker.stop);
  project.provide('pg', pg.info);
  project.provide('s3', s3.info);
  project.provide('docker', docker.info);
  return async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
}
