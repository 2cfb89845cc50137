// What must never lose a backup or race a restore (issue 13): one lock for every change, prune after a clock jump or a
// long gap, bad files under final names, the local clock against the S3 server's. Real PostgreSQL, s3rver, aws, CLI.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { adminQuery, createTestDatabaseInfo, type TestDatabase } from '../harness/pg.ts';
import { awsEnv, clearPrefix, listKeys } from '../harness/s3.ts';
import { makeProject, type TestProject } from '../harness/project.ts';
import { backupName } from '../../scripts/backup/manifest.ts';

const pg = inject('pg');
const s3 = inject('s3');
const DAY = 86_400_000;

const projects: TestProject[] = [];
const dirs: string[] = [];
const prefixes: string[] = [];
let receiver: http.Server;
let notifyBase = '';
const notified: Array<{ url: string; body: string }> = [];

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => {
      body += d;
    });
    req.on('end', () => {
      notified.push({ url: req.url ?? '', body });
      res.end('OK');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  notifyBase = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
});

afterAll(async () => {
  receiver.close();
  for (const p of projects) await p.cleanup().catch(() => undefined);
  for (const prefix of prefixes) await clearPrefix(s3, prefix).catch(() => undefined);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabaseInfo(pg, 'guard');
  await adminQuery(pg, db.name, `SET ROLE ${db.user}; CREATE TABLE t (v text); INSERT INTO t VALUES ('original')`);
  return db;
}

async function project(db: TestDatabase, env: Record<string, string> = {}): Promise<TestProject> {
  const p = await makeProject({ env: { DATABASE_URL: db.url, ...env } });
  projects.push(p);
  return p;
}

const backupDirOf = (p: TestProject) => path.join(p.dir, 'backup');
const archives = (p: TestProject) =>
  fs
    .readdirSync(backupDirOf(p))
    .filter((f) => f.endsWith('.tar.gz'))
    .sort();
/** A copy of an archive under the name a backup taken `daysAgo` days ago would have. */
function copyAs(p: TestProject, file: string, daysAgo: number): string {
  const name = `${backupName(p.name, new Date(Date.now() - daysAgo * DAY))}.tar.gz`;
  fs.copyFileSync(file, path.join(backupDirOf(p), name));
  return name;
}
async function firstBackup(p: TestProject): Promise<string> {
  const r = await p.run(['backup', '--only', 'db']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').at(-1)!;
}
function fixtures(scripts: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-guard-bin-'));
  dirs.push(dir);
  for (const [name, body] of Object.entries(scripts)) fs.writeFileSync(path.join(dir, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  return dir;
}
async function until(what: string, fn: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('one lock for everything that changes a database or the backup folder', () => {
  it('during a slow restore, db-import, backup, prune, reset-db and seed exit 5 at once naming it; the restore stands', async () => {
    const db = await database();
    const p = await project(db);
    const archive = await firstBackup(p);
    const name = path.basename(archive).replace(/\.tar\.gz$/, '');
    await adminQuery(pg, db.name, "UPDATE t SET v = 'changed'");
    const dump = path.join(p.dir, 'changed.dump');
    expect((await p.run(['db-export', dump])).code).toBe(0);
    // A pg_restore that waits before loading into a database (so the restore holds the lock for a while).
    const real = execFileSync('sh', ['-c', 'command -v pg_restore'], { encoding: 'utf8' }).trim();
    const mark = path.join(p.dir, 'restoring');
    const bin = fixtures({ pg_restore: `case " $* " in *" --dbname "*) touch "${mark}"; sleep 25 ;; esac\nexec "${real}" "$@"` });
    const restoring = p.run(['restore', name, '--yes', '--no-safety-backup'], { env: { PATH: `${bin}:${process.env.PATH}` } });
    await until('the restore to reach pg_restore', () => fs.existsSync(mark));
    const holder = JSON.parse(fs.readFileSync(path.join(backupDirOf(p), '.lock'), 'utf8')) as { task: string; pid: number };
    expect(holder.task).toBe('restore');
    for (const args of [['db-import', dump, '--yes'], ['backup', '--only', 'db'], ['prune'], ['reset-db', '--yes'], ['seed']]) {
      const t0 = Date.now();
      const r = await p.run(args);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(5);
      expect(r.stderr).toMatch(
        new RegExp(`cannot run ${args[0]} now: restore is running \\(pid ${holder.pid}, since \\d{4}-\\d\\d-\\d\\dT`),
      );
      expect(Date.now() - t0, args[0]).toBeLessThan(10_000);
    }
    expect(fs.existsSync(mark)).toBe(true);
    const done = await restoring;
    expect(done.code, done.stderr).toBe(0);
    expect(await adminQuery(pg, db.name, 'SELECT v FROM t')).toBe('original');
    expect(archives(p)).toEqual([path.basename(archive)]);
    // Released: the import runs now.
    const after = await p.run(['db-import', dump, '--yes']);
    expect(after.code, after.stderr).toBe(0);
    expect(await adminQuery(pg, db.name, 'SELECT v FROM t')).toBe('changed');
  });
});

describe('prune after a clock jump or a long gap', () => {
  it('after a 400-day pause the first backup deletes none of the 10 old ones, warns in the log, the notification and doctor', async () => {
    const db = await database();
    const p = await project(db, { BACKUP_RETENTION_DAYS: '30', BACKUP_KEEP_MIN: '3', NOTIFY_URL: `${notifyBase}/gap` });
    const first = await firstBackup(p);
    const old = Array.from({ length: 10 }, (_, i) => copyAs(p, first, 400 + i * 5));
    fs.rmSync(first);
    const doctor = await p.run(['doctor', '--json']);
    const check = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string; message: string }> }).checks.find(
      (c) => c.name === 'last-backup',
    );
    expect(check?.status, doctor.stdout).toBe('warn');
    expect(check?.message).toMatch(/400\.\d days old.*prune deletes nothing/);
    notified.length = 0;
    const r = await p.run(['backup', '--only', 'db']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/local: the newest earlier good backup, \S+, is 400\.\d days old, more than 15\.0 days: .*nothing is deleted/);
    expect(archives(p)).toEqual(expect.arrayContaining(old));
    expect(archives(p)).toHaveLength(11);
    const report = JSON.parse(notified.find((n) => n.url === '/gap')?.body ?? '{}') as { status?: string; warnings?: string[] };
    expect(report.status).toBe('success');
    expect(report.warnings?.[0]).toMatch(/400\.\d days old/);
  });
});

describe('bad files under final names never count as good backups', () => {
  it('a 0-byte, a truncated and a garbage archive take no keep-min slot: the newest 3 verified stay', async () => {
    const db = await database();
    const p = await project(db, { BACKUP_RETENTION_DAYS: '1', BACKUP_KEEP_MIN: '3' });
    const first = await firstBackup(p);
    const good = [3, 4, 5, 6].map((d) => copyAs(p, first, d));
    const dir = backupDirOf(p);
    const empty = `${backupName(p.name, new Date(Date.now() - 2 * DAY))}.tar.gz`;
    fs.writeFileSync(path.join(dir, empty), '');
    const cut = copyAs(p, first, 2.5);
    fs.truncateSync(path.join(dir, cut), Math.floor(fs.statSync(path.join(dir, cut)).size / 2));
    const garbage = `${backupName(p.name, new Date(Date.now() - 1.5 * DAY))}.tar.gz`;
    fs.writeFileSync(path.join(dir, garbage), crypto.randomBytes(4096));
    const r = await p.run(['prune']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${empty.replace(/\.tar\.gz$/, '')} does not count as a good backup: the file is empty`);
    expect(r.stderr).toMatch(new RegExp(`${cut.replace(/\.tar\.gz$/, '')} does not count as a good backup`));
    expect(r.stderr).toMatch(new RegExp(`${garbage.replace(/\.tar\.gz$/, '')} does not count as a good backup`));
    expect(archives(p)).toEqual([path.basename(first), good[0], good[1]].sort());
    // A verified archive that shrank afterwards (bit rot, a bad copy back) no longer counts: the other two stay.
    fs.truncateSync(path.join(dir, good[1]!), 1000);
    const again = await p.run(['prune']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/does not count as a good backup: it has 1000 bytes, \d+ when it was checked/);
    expect(archives(p)).toEqual([path.basename(first), good[0]].sort());
  });
});

describe('the local clock against the S3 server', () => {
  it("more than 5 minutes off the server's Date: nothing is pruned, local or remote; in step, prune deletes", async () => {
    // s3rver behind a proxy that can shift the Date header of every answer (what a server whose clock differs sends).
    let shiftMs = 3600_000;
    const target = new URL(s3.endpoint);
    const proxy = http.createServer((req, res) => {
      const up = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          const headers = { ...answer.headers, date: new Date(Date.now() + shiftMs).toUTCString() };
          res.writeHead(answer.statusCode ?? 502, headers);
          answer.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    try {
      const prefix = `guard-${crypto.randomBytes(3).toString('hex')}/`;
      prefixes.push(prefix);
      const db = await database();
      const p = await project(db, {
        BACKUP_RETENTION_DAYS: '1',
        BACKUP_KEEP_MIN: '1',
        S3_BUCKET: s3.bucket,
        S3_PREFIX: prefix,
        S3_ENDPOINT: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
        S3_REGION: s3.region,
        ...awsEnv(s3),
      });
      const first = await firstBackup(p);
      const old = [3, 4].map((d) => copyAs(p, first, d));
      for (const f of old)
        execFileSync('aws', ['--endpoint-url', s3.endpoint, 's3', 'cp', path.join(backupDirOf(p), f), `s3://${s3.bucket}/${prefix}${f}`], {
          env: { ...process.env, ...awsEnv(s3) },
          stdio: 'ignore',
        });
      const remoteBefore = (await listKeys(s3, prefix)).map((k) => k.key).sort();
      expect(remoteBefore).toHaveLength(3);
      const r = await p.run(['prune']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/the local clock is 60 minutes behind the S3 server's \(.*\): nothing is deleted/);
      expect(archives(p)).toHaveLength(3);
      expect((await listKeys(s3, prefix)).map((k) => k.key).sort()).toEqual(remoteBefore);
      shiftMs = 0;
      const inStep = await p.run(['prune']);
      expect(inStep.code, inStep.stderr).toBe(0);
      expect(archives(p)).toEqual([path.basename(first)]);
      expect((await listKeys(s3, prefix)).map((k) => k.key)).toEqual([`${prefix}${path.basename(first)}`]);
    } finally {
      proxy.close();
    }
  });
});
