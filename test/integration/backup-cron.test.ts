// The crontab block installed by cron-install, run the way cron runs it (env -i, PATH=/usr/bin:/bin, no terminal).
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { createTestDatabase } from '../harness/pg.ts';
import { clearPrefix, listKeys } from '../harness/s3.ts';
import { makeProject, type TestProject } from '../harness/project.ts';

const pg = inject('pg');
const s3 = inject('s3');
let saved: string | undefined;
let p: TestProject;
const prefix = `cron${crypto.randomBytes(4).toString('hex')}/`;
const MINE = '# a line that is not ours\n17 4 * * 0 /usr/bin/true\n';

const crontab = () => {
  const r = spawnSync('crontab', ['-l'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : '';
};

beforeAll(async () => {
  saved = spawnSync('crontab', ['-l'], { encoding: 'utf8' }).status === 0 ? crontab() : undefined;
  spawnSync('crontab', ['-'], { input: (saved ?? '') + MINE });
  const url = await createTestDatabase(pg, 'cron');
  p = await makeProject({
    env: {
      DATABASE_URL: url,
      BACKUP_CRON: '*/5 * * * *',
      S3_BUCKET: s3.bucket,
      S3_ENDPOINT: s3.endpoint,
      S3_REGION: s3.region,
      S3_PREFIX: prefix,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    },
  });
  // This stack has no Docker volume to back up: the database and addons/ only.
  const tasksFile = path.join(p.dir, 'tasks.ts');
  const text = fs.readFileSync(tasksFile, 'utf8').replace(/^\s*\{ name: 'filestore', kind: 'volume'.*\n/m, '');
  expect(text).not.toContain("name: 'filestore'");
  fs.writeFileSync(tasksFile, text);
});

afterAll(async () => {
  if (saved === undefined) spawnSync('crontab', ['-r']);
  else spawnSync('crontab', ['-'], { input: saved });
  await p?.cleanup();
  await clearPrefix(s3, prefix).catch(() => undefined);
});

describe('cron', () => {
  it("cron-install writes one block (idempotent), the line works under cron's environment, cron-remove removes only it", async () => {
    const first = await p.run(['cron-install']);
    expect(first.code, first.stderr).toBe(0);
    const dryInstall = await p.run(['cron-install', '--dry-run'], { env: { BACKUP_CRON: '0 3 * * *' } });
    expect(dryInstall.stderr).toMatch(/\[dry-run\] would have updated this block in your crontab:\n.*\n.*\n0 3 \* \* \* /);
    expect(crontab().match(new RegExp(`# BEGIN ${p.name} tasks`, 'g'))).toHaveLength(1);
    const again = await p.run(['cron-install']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already up to date/);
    const tab = crontab();
    expect(tab.match(new RegExp(`# BEGIN ${p.name} tasks`, 'g'))).toHaveLength(1);
    expect(tab).toContain(MINE.trim());
    const line = tab.split('\n').find((l) => l.startsWith('*/5 * * * * '))!;
    expect(line).toContain(`cd ${p.dir} && PATH=`);
    expect(line).toContain(
      `flock -n ${path.join(p.dir, 'backup/.cron.lock')} ${process.execPath} ${path.join(p.dir, 'bin/tasks.mjs')} ` +
        `backup --reason scheduled >> ${path.join(p.dir, 'backup/cron.log')} 2>&1`,
    );

    const status = await p.run(['cron-status']);
    expect(status.stdout).toContain('installed:');

    // Run the command part as cron does: no environment but PATH=/usr/bin:/bin and a bare HOME, no terminal, `\%` → `%`.
    const command = line.split(' ').slice(5).join(' ').replace(/\\%/g, '%');
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-cronhome-'));
    const r = spawnSync('env', ['-i', 'PATH=/usr/bin:/bin', `HOME=${home}`, 'SHELL=/bin/sh', 'setsid', 'sh', '-c', command], {
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      timeout: 240_000,
    });
    fs.rmSync(home, { recursive: true, force: true });
    const log = fs.readFileSync(path.join(p.dir, 'backup/cron.log'), 'utf8');
    expect(r.status, `${r.stderr}\n${log}`).toBe(0);
    expect(log).toMatch(/^\[\d{4}-\d\d-\d\dT[\d:]+Z\] backup .*: database, addons/m); // timestamped lines without a terminal
    expect(log).toMatch(/done: .* in .*uploaded/);
    const archives = fs.readdirSync(path.join(p.dir, 'backup')).filter((f) => f.endsWith('.tar.gz'));
    expect(archives).toHaveLength(1);
    expect((await listKeys(s3, prefix)).map((k) => k.key)).toEqual([`${prefix}${archives[0]}`]);
    const { readManifest } = await import('../../scripts/backup/archive.ts');
    expect((await readManifest(path.join(p.dir, 'backup', archives[0]!))).reason).toBe('scheduled');

    // A dry run says what it would do, and leaves the block where it is.
    const dry = await p.run(['cron-remove', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toMatch(/\[dry-run\] would remove the \S+ block from your crontab/);
    expect(dry.stderr).not.toMatch(/(^|\] )removed the /m);
    expect(crontab()).toContain(`# BEGIN ${p.name} tasks`);

    const removed = await p.run(['cron-remove']);
    expect(removed.code).toBe(0);
    expect(crontab()).not.toContain(`# BEGIN ${p.name} tasks`);
    expect(crontab()).toContain(MINE.trim());
    expect((await p.run(['cron-status'])).stdout).toContain('not installed');
  });
});
