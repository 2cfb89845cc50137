// A local S3 server (s3rver) on loopback for the real aws CLI.
import type { S3Info } from './services.ts';

export async function startS3(): Promise<{ info: S3Info; stop: () => Promise<void> }> {
  throw new Error('not implemented yet');
}
