// The development storage tasks (storage-seed, storage-reset) through the CLI against a real S3 server (s3rver, real aws CLI).
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../../scripts/core/cli.ts';
import { renderEnvFromTemplate } from '../../scripts/core/env.ts';
import { config, tasks } from '../../tasks.ts';
import { clearPrefix, listKeys } from '../harness/s3.ts';

const repo = path.resolve(import.meta.dirname, '../..');

describe('storage-reset and storage-seed (development object storage, real aws CLI and s3rver)', () => {
  const s3 = inject('s3');
  const prefix = `storage-${process.pid}/`;
  let root = '';
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'storage-'));
    for (const f of ['.env.template', 'compose', 'addons', 'seeds', 'storage'])
      fs.cpSync(path.join(repo, f), path.join(root, f), { recursive: true });
    const env = {
      COMPOSE_PROJECT_NAME: 'storage',
      POSTGRES_PASSWORD: 'pw-storage-123',
      S3_BUCKET: s3.bucket,
      S3_PREFIX: prefix,
      DEV_S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    };
    fs.writeFileSync(path.join(root, '.env'), renderEnvFromTemplate(fs.readFileSync(path.join(root, '.env.template'), 'utf8'), env), {
      mode: 0o600,
    });
  });
  afterAll(async () => {
    await clearPrefix(s3, prefix);
    fs.rmSync(root, { recursive: true, force: true });
  });

  async function run(argv: string[]) {
    let stdout = '';
    let stderr = '';
    const code = await main({
      argv,
      env: { PATH: process.env.PATH, HOME: os.tmpdir(), AWS_EC2_METADATA_DISABLED: 'true' },
      root,
      tasks,
      config,
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      stdinIsTTY: false,
    });
    return { code, stdout, stderr };
  }

  it('storage-seed uploads every fixture file under the bucket prefix', async () => {
    const r = await run(['storage-seed']);
    expect(r.stderr).toContain('uploaded 3 files');
    expect(r.code).toBe(0);
    const keys = (await listKeys(s3, prefix)).map((k) => k.key).sort();
    expect(keys).toEqual([`${prefix}README.txt`, `${prefix}attachments/partners.csv`, `${prefix}attachments/sample.json`]);
  });

  it('storage-reset needs --yes without a terminal, then empties the prefix', async () => {
    const refused = await run(['storage-reset']);
    expect(refused.code).toBe(3);
    expect((await listKeys(s3, prefix)).length).toBe(3);
    const r = await run(['storage-reset', '--yes']);
    expect(r.code).toBe(0);
    expect(await listKeys(s3, prefix)).toEqual([]);
  });

  it('both refuse production with exit 3 and touch nothing', async () => {
    await run(['storage-seed']);
    for (const t of ['storage-reset', 'storage-seed']) {
      const r = await run([t, '--yes', '--env', 'production']);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('refusing in production');
      expect(r.stderr).not.toContain('$ aws');
    }
    expect((await listKeys(s3, prefix)).length).toBe(3);
  });
});
