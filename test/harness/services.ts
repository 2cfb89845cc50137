// What the global setup hands to tests (vitest provide/inject): the real services started once per run.
import type {} from 'vitest';

export interface PgInfo {
  /** Throwaway cluster on loopback: superuser `test` (trust on the socket, password on TCP). */
  host: string;
  port: number;
  superuser: string;
  /** Password of the superuser over TCP. */
  password: string;
  /** Data directory (also holds the unix socket). */
  dir: string;
  /** /usr/lib/postgresql/15/bin */
  binDir: string;
}

export interface S3Info {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  dir: string;
}

/** One engine target of the e2e matrix (each a vitest project: e2e-v2, e2e-v1, e2e-remote-v2, e2e-remote-v1). */
export interface DockerInfo {
  available: boolean;
  /** Why e2e cannot run here (outside CI the files report themselves skipped; in CI this is a failure). */
  reason?: string;
  target?: 'local-v2' | 'local-v1' | 'remote-v2' | 'remote-v1';
  composeCmd?: 'docker compose' | 'docker-compose';
  /** Added to the environment of EVERY command a test runs for this target (tasks, compose, docker):
   *  DOCKER_CONFIG (the folder holding cli-plugins/docker-compose for v2), DOCKER_HOST=ssh://… when remote. */
  env?: Record<string, string>;
  remote?: boolean;
  /** Remote only: the engine's host name as users would see it (for the URLs `dev` prints). */
  remoteHost?: string;
  postgresImage?: string;
  odooImage?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pg: PgInfo;
    s3: S3Info;
    docker: DockerInfo;
  }
}
