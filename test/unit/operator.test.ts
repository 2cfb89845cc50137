// Operator helpers (schedules, completion words, PATH lookup) and the development storage tasks against a real S3 server.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../../scripts/cli.ts';
import { renderEnvFromTemplate } from '../../scripts/env.ts';
import { allowedAgeMs, cronPeriodMs, findOnPath, formatAge, localBackups } from '../../scripts/doctor.ts';
import { completionWords } from '../../scripts/completion.ts';
import { backupName } from '../../scripts/manifest.ts';
import { config, tasks } from '../../tasks.ts';
import { clearPrefix, listKeys } from '../harness/s3.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const H = 3600_000;
const D = 24 * H;

describe('cronPeriodMs: the longest gap between runs of a schedule', () => {
  it.each([
    ['0 2 */5 * *', 5 * D],
    ['0 2 * * *', D],
    ['30 */6 * * *', 6 * H],
    ['0 3 * * 0', 7 * D],
    ['0 4 1 * *', 31 * D],
    ['*/15 * * * *', 15 * 60_000],
    ['0 * * * *', H],
  ])('%s → %d ms', (expr, ms) => expect(cronPeriodMs(expr)).toBe(ms));
  it('is undefined for something that is not a schedule, and for @reboot', () => {
    expect(cronPeriodMs('every day')).toBeUndefined();
    expect(cronPeriodMs('@reboot')).toBeUndefined();
  });
  it.each([
    ['@hourly', H],
    ['@daily', D],
    ['@weekly', 7 * D],
    ['@monthly', 31 * D],
  ])('%s → %d ms', (expr, ms) => expect(cronPeriodMs(expr)).toBe(ms));
  it('allows a quarter of a period and an hour of slack', () => expect(allowedAgeMs(D)).toBe(31 * H));
});

describe('small helpers', () => {
  it('formatAge says days and hours for long ages', () => {
    expect(formatAge(10 * D)).toBe('10.0 days');
    expect(formatAge(5 * H)).toBe('5.0 hours');
    expect(formatAge(90_000)).toBe('1 min 30 s');
  });
  it('findOnPath finds executables only', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'path-'));
    fs.writeFileSync(path.join(dir, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'data'), 'x', { mode: 0o644 });
    expect(findOnPath('tool', `/nonexistent:${dir}`)).toBe(path.join(dir, 'tool'));
    expect(findOnPath('data', dir)).toBeUndefined();
    expect(findOnPath('tool', '')).toBeUndefined();
    fs.rmSync(dir, { recursive: true });
  });
  it('localBackups orders by the time in the name, not by mtime, and ignores other files', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backups-'));
    const older = backupName('odoo', new Date('2026-01-01T00:00:00Z'));
    const newer = backupName('odoo', new Date('2026-02-01T00:00:00Z'));
    fs.writeFileSync(path.join(dir, `${newer}.tar.gz`), 'nn');
    fs.writeFileSync(path.join(dir, `${older}.tar.gz`), 'o'); // written last: newest mtime
    fs.writeFileSync(path.join(dir, 'notes.tar.gz'), 'x');
    expect(localBackups(dir).map((b) => [b.name, b.size])).toEqual([
      [newer, 2],
      [older, 1],
    ]);
    fs.rmSync(dir, { recursive: true });
  });
  it("completionWords lists tasks and aliases, hides hidden ones, and gives a task's flags", () => {
    const words = completionWords(tasks).trim().split('\n');
    expect(words).toContain('status');
    expect(words).toContain('ps');
    expect(words).toContain('doctor');
    expect(completionWords(tasks, 'down').trim().split('\n')).toEqual(['--volumes', '--dry-run', '--yes', '--env', '--quiet', '--help']);
    expect(completionWords(tasks, 'no-such-task')).toBe('');
  });
});

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
