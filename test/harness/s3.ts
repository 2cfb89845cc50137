// A local S3 server (s3rver) on loopback for the real aws CLI.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, repoRoot } from './pg.ts';
import type { S3Info } from './services.ts';

/** The environment the real aws CLI needs to talk to the local server (no profile, no IMDS lookups). */
export function awsEnv(info: S3Info): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: info.accessKeyId,
    AWS_SECRET_ACCESS_KEY: info.secretAccessKey,
    AWS_DEFAULT_REGION: info.region,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

function runAws(info: S3Info, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn('aws', ['--endpoint-url', info.endpoint, ...args], {
      env: { ...process.env, ...awsEnv(info) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => res({ code: 127, stdout, stderr: String(e) }));
    child.on('close', (code) => res({ code: code ?? 1, stdout, stderr }));
  });
}

/** Keys under the bucket (optionally under a prefix), read with the real aws CLI. */
export async function listKeys(info: S3Info, prefix = ''): Promise<Array<{ key: string; size: number }>> {
  const r = await runAws(info, ['s3api', 'list-objects', '--bucket', info.bucket, '--prefix', prefix, '--output', 'json']);
  if (r.code !== 0) throw new Error(`aws s3api list-objects exited ${r.code}: ${r.stderr.trim()}`);
  if (!r.stdout.trim()) return [];
  const parsed = JSON.parse(r.stdout) as { Contents?: Array<{ Key: string; Size: number }> };
  return (parsed.Contents ?? []).map((o) => ({ key: o.Key, size: o.Size }));
}

/** Removes every object under a prefix (tests share one bucket: each uses its own prefix). */
export async function clearPrefix(info: S3Info, prefix: string): Promise<void> {
  await runAws(info, ['s3', 'rm', `s3://${info.bucket}/${prefix}`, '--recursive', '--only-show-errors']);
}

export async function startS3(): Promise<{ info: S3Info; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ct-s3-'));
  const port = await freePort();
  const bucket = 'backups';
  const bin = join(repoRoot, 'node_modules', '.bin', 's3rver');
  // Its own process: a large upload must not stall the test runner's event loop.
  const child = spawn(bin, ['-d', dir, '-a', '127.0.0.1', '-p', String(port), '--configure-bucket', bucket, '--silent'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number>((res) => child.on('exit', (code) => res(code ?? 1)));
  const info: S3Info = {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    region: 'us-east-1',
    dir,
  };
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when the real aws CLI can list the bucket.
  const deadline = Date.now() + 30_000;
  let last = '';
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`s3rver exited with code ${child.exitCode}: ${stderr.trim()}`);
    }
    const r = await runAws(info, ['s3', 'ls', `s3://${bucket}`]);
    if (r.code === 0) break;
    last = r.stderr.trim();
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`s3rver did not answer aws s3 ls within 30 s: ${last}`);
    }
    await new Promise((r2) => setTimeout(r2, 200));
  }
  return { info, stop };
}
