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

export interface DockerInfo {
  available: boolean;
  /** Why the end-to-end tests do not run here (only on a machine without Docker; in CI this is a failure). */
  reason?: string;
  composeCmd?: string;
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
