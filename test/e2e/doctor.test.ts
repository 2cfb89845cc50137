// `tasks doctor` on a healthy setup: the real Docker engine of this target, a reachable bucket (real s3rver), a recent backup.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { backupName } from '../../scripts/backup/manifest.ts';
import { describeE2E } from '../harness/e2e.ts';
import { makeProject, type TestProject } from '../harness/project.ts';
import { listKeys } from '../harness/s3.ts';

const docker = inject('docker');

interface Report {
  ok: boolean;
  checks: Array<{ name: string; ok: boolean; status: string; message: string; fix?: string }>;
}

// Without an engine (outside CI only: in CI that fails instead) the suite reports itself skipped, with the reason.
describeE2E('tasks doctor on a healthy setup', () => {
  const s3 = inject('s3');
  const prefix = `doctor-${process.pid}/`;
  let p: TestProject;
  beforeAll(async () => {
    p = await makeProject({
      docker,
      env: {
        S3_BUCKET: s3.bucket,
        S3_PREFIX: prefix,
        S3_ENDPOINT: s3.endpoint,
        S3_REGION: s3.region,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      },
    });
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('passes every check: Docker and compose here, the engine running, the bucket writable, a backup an hour old', async () => {
    fs.mkdirSync(path.join(p.dir, 'backup'), { recursive: true });
    const name = backupName(p.name, new Date(Date.now() - 3600_000));
    fs.writeFileSync(path.join(p.dir, 'backup', `${name}.tar.gz`), 'x'.repeat(4096));
    const r = await p.run(['doctor', '--json']);
    const report = JSON.parse(r.stdout) as Report;
    const check = (n: string) => report.checks.find((c) => c.name === n)!;
    for (const n of ['docker', 'compose', 'engine', 'node', 'env', 'env-permissions', 'disk', 's3', 'last-backup']) {
      expect(check(n), `${n}: ${check(n)?.message}`).toMatchObject({ ok: true, status: 'ok' });
    }
    expect(check('s3').message).toContain('write, read and delete of a test object work');
    expect(check('disk').message).toMatch(/free, twice the last backup is 8\.0 KB$/);
    expect(report.ok).toBe(true);
    expect(r.code).toBe(0);
    // The test object is gone again.
    expect(await listKeys(s3, prefix)).toEqual([]);
  });
});
