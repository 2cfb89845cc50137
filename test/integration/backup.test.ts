// Backups against a real PostgreSQL (URL mode, pagila), a real S3 server (s3rver) and the real aws CLI, through the real CLI.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabaseInfo, loadPagila, adminQuery, type TestDatabase } from '../harness/pg.ts';
import { awsEnv as s3Env, clearPrefix, listKeys } from '../harness/s3.ts';
import { startFaultProxy, type Fault, type FaultProxy } from '../harness/s3-faults.ts';
import { makeProject, type RunResult, type TestProject } from '../harness/project.ts';
import { readManifest, listMembers } from '../../scripts/backup/archive.ts';

const pg = inject('pg');
const s3 = inject('s3');

let db: TestDatabase;
const projects: TestProject[] = [];
const prefixes: string[] = [];
const wrapDirs: string[] = [];

const realBin = (tool: string) => execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();

beforeAll(async () => {
  db = await createTestDatabaseInfo(pg, 'bk');
  await loadPagila(pg, db.name);
});

afterAll(async () => {
  for (const p of projects) await p.cleanup().catch(() => undefined);
  for (const prefix of prefixes) await clearPrefix(s3, prefix).catch(() => undefined);
  for (const d of wrapDirs) fs.rmSync(d, { recursive: true, force: true });
});

interface Setup {
  p: TestProject;
  prefix: string;
  dir: string;
}

async function setup(o: { s3?: boolean; env?: Record<string, string> } = {}): Promise<Setup> {
  const prefix = `t${crypto.randomBytes(4).toString('hex')}/`;
  prefixes.push(prefix);
  const env: Record<string, string> = {
    DATABASE_URL: db.url,
    ...(o.s3 === false
      ? {}
      : {
          S3_BUCKET: s3.bucket,
          S3_ENDPOINT: s3.endpoint,
          S3_REGION: s3.region,
          S3_PREFIX: prefix,
          AWS_ACCESS_KEY_ID: s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        }),
    ...o.env,
  };
  const p = await makeProject({ env });
  projects.push(p);
  return { p, prefix, dir: path.join(p.dir, 'backup') };
}

/** A folder of fixture programs put first on PATH (the honest way to make aws or pg_dump fail). */
function wrappers(scripts: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-wrap-'));
  wrapDirs.push(dir);
  for (const [name, body] of Object.entries(scripts)) fs.writeFileSync(path.join(dir, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  return dir;
}
const withPath = (dir: string) => ({ PATH: `${dir}:${process.env.PATH}` });

const archives = (dir: string) =>
  fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.tar.gz'))
        .sort()
    : [];
const leftovers = (dir: string) =>
  fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-') || f.endsWith('.tmp') || f.startsWith('.verify-')) : [];

/** An older good backup: a copy of a real archive under an old name (what retention would delete after a good run). */
function oldCopy(s: Setup, archiveName: string, date = '2020-01-01_00-00-00'): string {
  const target = path.join(s.dir, `${s.p.name}_backup_${date}.tar.gz`);
  fs.copyFileSync(path.join(s.dir, archiveName), target);
  return target;
}

/** The real CLI as a child we can signal (same environment rules as TestProject.run). */
function start(s: Setup, args: string[], env: Record<string, string> = {}): { child: ReturnType<typeof spawn>; done: Promise<RunResult> } {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(base))
    if (/^(COMPOSE_|APP_ENV$|POSTGRES_|ODOO_|DB_|DATABASE_URL$|S3_|AWS_|BACKUP_|VITEST)/.test(k)) delete base[k];
  const child = spawn(process.execPath, [path.join(s.p.dir, 'bin/tasks.mjs'), ...args], {
    cwd: s.p.dir,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const done = new Promise<RunResult>((res) =>
    child.on('close', (code, sig) => res({ code: code ?? (sig === 'SIGKILL' ? 137 : 128), stdout, stderr })),
  );
  return { child, done };
}

async function until(what: string, fn: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** pg_dump that writes some real output, then waits (so a test can interrupt a backup mid-run). */
const slowPgDump = (seconds: number) =>
  `"${realBin('pg_dump')}" "$@" | head -c 100000\nsleep ${seconds}\nexec "${realBin('pg_dump')}" "$@"`;

describe('backup (URL mode, real PostgreSQL, s3rver, aws CLI)', () => {
  it('pagila: backed up, uploaded, deleted locally, listed as remote, downloaded, verified with a restore test', async () => {
    const s = await setup({ env: { BACKUP_KEEP_MIN: '1' } });
    const first = await s.p.run(['backup', '--only', 'db,addons']);
    expect(first.code, first.stderr).toBe(0);
    const [file] = archives(s.dir);
    expect(file).toMatch(new RegExp(`^${s.p.name}_backup_\\d{4}-\\d\\d-\\d\\d_\\d\\d-\\d\\d-\\d\\d\\.tar\\.gz$`));
    const local = path.join(s.dir, file!);
    expect(first.stdout.trim()).toBe(local);
    expect(fs.statSync(local).mode & 0o777).toBe(0o600);
    expect(fs.statSync(s.dir).mode & 0o777).toBe(0o700);
    expect(leftovers(s.dir)).toEqual([]);

    // Manifest: versions, tool, parts with sizes and checksums; flat members.
    const m = await readManifest(local);
    expect(m).toMatchObject({
      format: 'compose-tasks-backup',
      version: 1,
      project: s.p.name,
      database: db.name,
      appEnv: 'development',
      reason: 'manual',
      tool: { name: 'compose-tasks' },
    });
    expect(m.serverVersion).toMatch(/^15\./);
    expect(m.pgDumpVersion).toMatch(/^\d+/);
    expect(m.parts.map((x) => [x.name, x.file, x.format])).toEqual([
      ['database', 'database.dump', 'pg_dump-custom'],
      ['addons', 'addons.tar', 'tar'],
    ]);
    for (const part of m.parts) expect(part.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect((await listMembers(local)).map((x) => x.name)).toEqual(['manifest.json', 'database.dump', 'addons.tar']);

    // Uploaded under the final key with the same size.
    const keys = await listKeys(s3, s.prefix);
    expect(keys).toEqual([{ key: `${s.prefix}${file}`, size: fs.statSync(local).size }]);

    // An old backup is pruned, local and remote, after a good run (keep min 1, 30 days).
    const old = oldCopy(s, file!);
    execFileSync(
      'aws',
      ['--endpoint-url', s3.endpoint, 's3', 'cp', old, `s3://${s3.bucket}/${s.prefix}${path.basename(old)}`, '--only-show-errors'],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
          AWS_DEFAULT_REGION: s3.region,
        },
      },
    );
    await new Promise((r) => setTimeout(r, 1100)); // a new name (names have seconds)
    const second = await s.p.run(['backup', '--only', 'db']);
    expect(second.code, second.stderr).toBe(0);
    expect(fs.existsSync(old)).toBe(false);
    expect(second.stderr).toContain(`deleted local ${old}`);
    expect((await listKeys(s3, s.prefix)).map((k) => k.key)).not.toContain(`${s.prefix}${path.basename(old)}`);
    expect(archives(s.dir)).toHaveLength(2);

    // Delete the first locally: listed as remote only.
    fs.rmSync(local);
    const listed = await s.p.run(['backups', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const entries = JSON.parse(listed.stdout) as Array<{ name: string; where: string; size: number; date: string }>;
    expect(entries.map((e) => e.where)).toEqual(['both', 'remote']);
    expect(entries[1]!.name).toBe(file!.replace('.tar.gz', ''));
    expect(entries[0]!.date > entries[1]!.date).toBe(true);

    // Download: checked against the manifest, then under its final name.
    const dl = await s.p.run(['download', entries[1]!.name]);
    expect(dl.code, dl.stderr).toBe(0);
    expect(fs.existsSync(local)).toBe(true);
    expect(fs.statSync(local).mode & 0o777).toBe(0o600);
    expect(leftovers(s.dir)).toEqual([]);

    // Verify with a restore test: a throwaway database is restored, checked and dropped.
    const v = await s.p.run(['verify', entries[1]!.name, '--restore-test']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/restore test passed: \d+ tables restored/);
    expect(await adminQuery(pg, 'postgres', `SELECT count(*) FROM pg_database WHERE datname LIKE '${db.name}_verify_%'`)).toBe('0');
    const after = JSON.parse((await s.p.run(['backups', '--json'])).stdout) as Array<{
      name: string;
      lastVerified?: string;
      restoreTested?: boolean;
    }>;
    const verified = after.find((e) => e.name === entries[1]!.name)!;
    expect(verified.restoreTested).toBe(true);
    expect(Date.now() - Date.parse(verified.lastVerified!)).toBeLessThan(10 * 60_000);
    const table = await s.p.run(['backups']);
    expect(table.stdout).toMatch(/NAME\s+DATE \(UTC\)\s+SIZE\s+WHERE\s+LAST VERIFIED/);
    expect(table.stdout).toContain('(restore test)');
  });

  it('a download that fails its checksum is refused and its temp file removed', async () => {
    const s = await setup();
    expect((await s.p.run(['backup', '--only', 'db'])).code).toBe(0);
    const [file] = archives(s.dir);
    // Replace the remote object by a damaged copy (one byte flipped in the middle of the dump).
    const bad = path.join(os.tmpdir(), `bad-${crypto.randomBytes(4).toString('hex')}.tar`);
    execFileSync('sh', ['-c', `gzip -dc "$1" > "$2"`, 'sh', path.join(s.dir, file!), bad]);
    const buf = fs.readFileSync(bad);
    const mid = buf.length >> 1;
    buf[mid] = buf[mid]! ^ 0xff;
    fs.writeFileSync(bad, buf);
    execFileSync('sh', ['-c', 'gzip -1 < "$1" > "$1.gz"', 'sh', bad]);
    execFileSync(
      'aws',
      ['--endpoint-url', s3.endpoint, 's3', 'cp', `${bad}.gz`, `s3://${s3.bucket}/${s.prefix}${file}`, '--only-show-errors'],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
          AWS_DEFAULT_REGION: s3.region,
        },
      },
    );
    fs.rmSync(bad, { force: true });
    fs.rmSync(`${bad}.gz`, { force: true });
    fs.rmSync(path.join(s.dir, file!));
    const r = await s.p.run(['download', file!]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/database.dump \(part database\) has sha256/);
    expect(archives(s.dir)).toEqual([]);
    expect(leftovers(s.dir)).toEqual([]);
    expect(fs.readdirSync(s.dir).filter((f) => f.includes('download'))).toEqual([]);
  });

  describe('faults: nothing lost, no upload, no prune', () => {
    /** A project with one good backup and an old one that a good run would prune (keep min 1). */
    async function withHistory(): Promise<{ s: Setup; before: string[]; keysBefore: string[] }> {
      const s = await setup({ env: { BACKUP_KEEP_MIN: '1' } });
      const r = await s.p.run(['backup', '--only', 'db']);
      expect(r.code, r.stderr).toBe(0);
      oldCopy(s, archives(s.dir)[0]!);
      await new Promise((res) => setTimeout(res, 1100));
      return { s, before: archives(s.dir), keysBefore: (await listKeys(s3, s.prefix)).map((k) => k.key) };
    }
    async function expectNothingLost(x: { s: Setup; before: string[]; keysBefore: string[] }): Promise<void> {
      expect(archives(x.s.dir)).toEqual(x.before);
      expect(leftovers(x.s.dir)).toEqual([]);
      expect((await listKeys(s3, x.s.prefix)).map((k) => k.key)).toEqual(x.keysBefore);
    }

    it('pg_dump writing half its output then failing: non-zero exit, nothing under a final name', async () => {
      const x = await withHistory();
      const w = wrappers({ pg_dump: `"${realBin('pg_dump')}" "$@" | head -c 50000\nexit 1` });
      const r = await x.s.p.run(['backup', '--only', 'db'], { env: withPath(w) });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/pg_dump exited with code 1/);
      await expectNothingLost(x);
    });

    it('pg_dump exiting 0 with empty output is caught', async () => {
      const x = await withHistory();
      const w = wrappers({ pg_dump: `[ "$1" = --version ] && exec "${realBin('pg_dump')}" "$@"\nexit 0` });
      const r = await x.s.p.run(['backup', '--only', 'db'], { env: withPath(w) });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/pg_dump exited 0 but wrote nothing/);
      await expectNothingLost(x);
    });

    it('pg_dump exiting 0 with a truncated dump is caught by the full read', async () => {
      const x = await withHistory();
      const w = wrappers({ pg_dump: `"${realBin('pg_dump')}" "$@" | head -c 200000\nexit 0` });
      const r = await x.s.p.run(['backup', '--only', 'db'], { env: withPath(w) });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/truncated|corrupt|pg_restore/i);
      await expectNothingLost(x);
    });

    it('tar exit 2 (fatal) fails the backup; tar exit 1 (files changed) is a warning', async () => {
      const x = await withHistory();
      const fatal = wrappers({ tar: 'echo "tar: addons: Cannot open: Permission denied" >&2\nexit 2' });
      const r = await x.s.p.run(['backup', '--only', 'addons'], { env: withPath(fatal) });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/backup part addons: tar exited with code 2/);
      await expectNothingLost(x);
      // Only the tar that writes the stream exits 1 (the listing of what it wrote, tar -t, is the real tar's).
      const changed = wrappers({
        tar: `"${realBin('tar')}" "$@" || exit\ncase " $* " in *" -cf "*) echo "tar: ./x: file changed as we read it" >&2; exit 1;; esac`,
      });
      const ok = await x.s.p.run(['backup', '--only', 'addons'], { env: withPath(changed) });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stderr).toMatch(/warning: backup part addons: tar exit 1, files changed/);
    });

    it.each([
      ['mid-member', `"${realBin('tar')}" "$@" | head -c 20480\nexit 0`, /its tar stream is incomplete \(tar -t: .*Unexpected EOF/],
      [
        'exactly between two members',
        // The stream without its last member and the end-of-archive blocks: every header and body whole, tar -t happy.
        `"${realBin('tar')}" "$@" > "$TMPDIR/whole.tar"\n` +
          "python3 -c 'import sys,tarfile; f=sys.argv[1]; o=tarfile.open(f).getmembers()[-1].offset; " +
          'sys.stdout.buffer.write(open(f,"rb").read()[:o])\' "$TMPDIR/whole.tar"\nexit 0',
        /its tar stream is incomplete \(it does not end with the end-of-archive blocks\)/,
      ],
    ])('a folder stream cut %s, tar exiting 0: the backup fails, nothing published, uploaded or pruned', async (_what, body, message) => {
      const x = await withHistory();
      fs.writeFileSync(path.join(x.s.p.dir, 'addons', 'big.bin'), crypto.randomBytes(300_000));
      fs.writeFileSync(path.join(x.s.p.dir, 'addons', 'last.txt'), 'the last member\n');
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-cut-'));
      wrapDirs.push(tmp);
      const w = wrappers({ tar: `case " $* " in *" -cf "*) ;; *) exec "${realBin('tar')}" "$@";; esac\n${body}` });
      const r = await x.s.p.run(['backup', '--only', 'db,addons'], { env: { ...withPath(w), TMPDIR: tmp } });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`error: backup part addons: ${message.source}`));
      expect(r.stderr).not.toMatch(/uploading|deleted/);
      await expectNothingLost(x);
    });

    it.each([1, 2, 255])('aws exiting %i: exit 8, the backup stays local, no prune', async (code) => {
      const x = await withHistory();
      const w = wrappers({ aws: `echo "upload failed: simulated ($*)" >&2\nexit ${code}` });
      const r = await x.s.p.run(['backup', '--only', 'db'], { env: withPath(w) });
      expect(r.code).toBe(8);
      expect(r.stderr).toContain(`aws exited with code ${code}`);
      expect(r.stderr).toMatch(/the upload did not happen.*the backup stays local/);
      expect(r.stderr).toMatch(/retrying \(2\/3\)/);
      const now = archives(x.s.dir);
      expect(now.length).toBe(x.before.length + 1); // the new, checked backup is kept locally
      for (const f of x.before) expect(now).toContain(f); // and the old one was not pruned
      expect(leftovers(x.s.dir)).toEqual([]);
      expect((await listKeys(s3, x.s.prefix)).map((k) => k.key)).toEqual(x.keysBefore);
    });

    it('missing S3 credentials: the backup stays local, exit 8, the message says the upload did not happen', async () => {
      const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-home-'));
      wrapDirs.push(home);
      const s = await setup({ env: { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' } });
      const r = await s.p.run(['backup', '--only', 'db'], { env: { HOME: home } });
      expect(r.code).toBe(8);
      expect(r.stderr).toMatch(/the upload did not happen: no S3 credentials/);
      expect(archives(s.dir)).toHaveLength(1);
      expect(await listKeys(s3, s.prefix)).toEqual([]);
    });

    it('disk full: a clear message, temp files removed, older backups intact', async () => {
      const s = await setup({ s3: false });
      const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-full-'));
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1100k,mode=0700', 'tmpfs', mnt]);
      expect(m.status, String(m.stderr)).toBe(0);
      try {
        const env = { BACKUP_DIR: mnt };
        const small = await s.p.run(['backup', '--only', 'addons'], { env });
        expect(small.code, small.stderr).toBe(0);
        const before = archives(mnt);
        await new Promise((res) => setTimeout(res, 1100));
        const r = await s.p.run(['backup', '--only', 'db,addons'], { env });
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/no space left on (the )?device/i);
        expect(archives(mnt)).toEqual(before);
        expect(fs.readdirSync(mnt).filter((f) => f.startsWith('.tmp-') || f.endsWith('.tmp'))).toEqual([]);
      } finally {
        spawnSync('umount', [mnt]);
        fs.rmSync(mnt, { recursive: true, force: true });
      }
    });
  });

  describe('locking and interruption', () => {
    it('a second concurrent run exits 5 at once naming the pid; a lock left by SIGKILL is recovered', async () => {
      const s = await setup({ s3: false });
      const w = wrappers({ pg_dump: slowPgDump(30) });
      const first = start(s, ['backup', '--only', 'db'], withPath(w));
      await until(
        'the first run to hold the lock',
        () =>
          fs.existsSync(path.join(s.dir, '.lock')) &&
          fs.readFileSync(path.join(s.dir, '.lock'), 'utf8').trim() !== '' &&
          leftovers(s.dir).length > 0,
      );
      const t0 = Date.now();
      const second = await s.p.run(['backup', '--only', 'db']);
      expect(second.code).toBe(5);
      expect(second.stderr).toContain(`cannot run backup now: backup is running (pid ${first.child.pid}, since 20`);
      expect(Date.now() - t0).toBeLessThan(20_000);
      first.child.kill('SIGKILL');
      await first.done;
      // The killed run's temp files are still there; the next run takes the lock and removes them.
      expect(leftovers(s.dir).length).toBeGreaterThan(0);
      const third = await s.p.run(['backup', '--only', 'db']);
      expect(third.code, third.stderr).toBe(0);
      expect(third.stderr).toMatch(/left by an interrupted run/);
      expect(leftovers(s.dir)).toEqual([]);
      expect(archives(s.dir)).toHaveLength(1);
    });

    it.each([
      ['SIGTERM', 143],
      ['SIGINT', 130],
    ] as const)('%s mid-run: temp files removed, lock released, exit %i', async (sig, code) => {
      const s = await setup({ s3: false });
      const w = wrappers({ pg_dump: slowPgDump(30) });
      const run = start(s, ['backup', '--only', 'db,addons'], withPath(w));
      await until(
        'the backup to be running',
        () =>
          leftovers(s.dir).length > 0 &&
          fs.existsSync(path.join(s.dir, '.lock')) &&
          fs.readFileSync(path.join(s.dir, '.lock'), 'utf8').trim() !== '',
      );
      await new Promise((r) => setTimeout(r, 500));
      run.child.kill(sig);
      const r = await run.done;
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr).toContain(`interrupted (${sig})`);
      expect(leftovers(s.dir)).toEqual([]);
      expect(archives(s.dir)).toEqual([]);
      // Lock released: flock -n takes it at once.
      const probe = spawnSync('flock', ['-n', path.join(s.dir, '.lock'), 'true']);
      expect(probe.status).toBe(0);
    });
  });

  describe('retention through the CLI', () => {
    async function withOld(env: Record<string, string>, dates: string[]): Promise<Setup> {
      const s = await setup({ s3: false, env });
      expect((await s.p.run(['backup', '--only', 'addons'])).code).toBe(0);
      const [real] = archives(s.dir);
      for (const d of dates) oldCopy(s, real!, d);
      return s;
    }

    it('prune --dry-run shows exactly what it would delete, and deletes nothing', async () => {
      const s = await withOld({ BACKUP_RETENTION_DAYS: '30', BACKUP_KEEP_MIN: '2' }, [
        '2020-01-01_00-00-00',
        '2020-02-01_00-00-00',
        '2020-03-01_00-00-00',
      ]);
      const before = archives(s.dir);
      const r = await s.p.run(['prune', '--dry-run']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`would delete local ${path.join(s.dir, `${s.p.name}_backup_2020-01-01_00-00-00.tar.gz`)}`);
      expect(r.stderr).toContain(`would delete local ${path.join(s.dir, `${s.p.name}_backup_2020-02-01_00-00-00.tar.gz`)}`);
      expect(r.stderr).not.toContain('2020-03-01_00-00-00.tar.gz (');
      expect(archives(s.dir)).toEqual(before);
      const real = await s.p.run(['prune']);
      expect(real.code).toBe(0);
      expect(archives(s.dir)).toHaveLength(2);
    });

    it('0 retention days keeps the newest BACKUP_KEEP_MIN', async () => {
      const s = await withOld({ BACKUP_RETENTION_DAYS: '0', BACKUP_KEEP_MIN: '2' }, ['2026-01-01_00-00-00', '2026-01-02_00-00-00']);
      expect((await s.p.run(['prune'])).code).toBe(0);
      const left = archives(s.dir);
      expect(left).toHaveLength(2);
      expect(left).toContain(`${s.p.name}_backup_2026-01-02_00-00-00.tar.gz`);
    });

    it('every backup old: the newest keep-min stay', async () => {
      const s = await setup({ s3: false, env: { BACKUP_RETENTION_DAYS: '7', BACKUP_KEEP_MIN: '2' } });
      expect((await s.p.run(['backup', '--only', 'addons'])).code).toBe(0);
      const [real] = archives(s.dir);
      // Older than the retention, not older than the gap after which prune deletes nothing (3 × 5 days).
      const daysAgo = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 19).replace('T', '_').replace(/:/g, '-');
      const [d10, d11, d12] = [10, 11, 12].map(daysAgo);
      for (const d of [d10!, d11!, d12!]) oldCopy(s, real!, d);
      fs.rmSync(path.join(s.dir, real!));
      expect((await s.p.run(['prune'])).code).toBe(0);
      expect(archives(s.dir)).toEqual([`${s.p.name}_backup_${d11}.tar.gz`, `${s.p.name}_backup_${d10}.tar.gz`]);
    });

    it('the clock wrong (a backup dated in the future): nothing is deleted, a warning says why', async () => {
      const s = await withOld({ BACKUP_RETENTION_DAYS: '1', BACKUP_KEEP_MIN: '1' }, ['2099-01-01_00-00-00', '2020-01-01_00-00-00']);
      const before = archives(s.dir);
      const r = await s.p.run(['prune']);
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/clock looks wrong, nothing is deleted/);
      expect(archives(s.dir)).toEqual(before);
    });
  });

  it('secrets never reach argv (/proc/*/cmdline) or the output', async () => {
    const s = await setup({ env: { AWS_SECRET_ACCESS_KEY: s3.secretAccessKey } });
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ct-argv-')), 'argv.log');
    wrapDirs.push(path.dirname(log));
    // Each wrapper records its own /proc/self/cmdline-equivalent argv and environment names, then runs the real tool.
    const rec = (tool: string) => `printf '%s\\n' "$0 $*" >> "${log}"\nexec "${realBin(tool)}" "$@"`;
    const w = wrappers({ pg_dump: rec('pg_dump'), pg_restore: rec('pg_restore'), psql: rec('psql'), aws: rec('aws'), tar: rec('tar') });
    const r = await s.p.run(['backup', '--only', 'db,addons'], { env: withPath(w) });
    expect(r.code, r.stderr).toBe(0);
    const argv = fs.readFileSync(log, 'utf8');
    expect(argv).toMatch(/pg_dump .*--no-password/);
    expect(argv).toMatch(/aws .*s3api put-object/);
    for (const secret of [db.password, s3.secretAccessKey]) {
      expect(argv).not.toContain(secret);
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
    expect(argv).not.toContain(db.url);
  });

  it('the archive is fsynced before the rename that publishes it, and its folder before the upload (strace)', async () => {
    const s = await setup();
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ct-strace-')), 'trace');
    wrapDirs.push(path.dirname(log));
    const base: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(base))
      if (/^(COMPOSE_|APP_ENV$|POSTGRES_|ODOO_|DB_|DATABASE_URL$|S3_|AWS_|BACKUP_|VITEST)/.test(k)) delete base[k];
    const trace = ['-f', '-qq', '-y', '-e', 'signal=none', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2,execve', '-o', log];
    const ran = spawnSync('strace', [...trace, process.execPath, path.join(s.p.dir, 'bin/tasks.mjs'), 'backup', '--only', 'addons'], {
      cwd: s.p.dir,
      env: base,
      encoding: 'utf8',
    });
    const r = { code: ran.status, stdout: ran.stdout, stderr: ran.stderr };
    expect(r.code, r.stderr).toBe(0);
    const final = r.stdout.trim();
    const lines = fs.readFileSync(log, 'utf8').split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const fsyncTmp = at(new RegExp(`fs?(data)?sync\\(\\d+<${esc(final)}\\.tmp>\\)`));
    const rename = at(new RegExp(`rename(at2?)?\\(.*"${esc(final)}\\.tmp".*"${esc(final)}"`));
    const fsyncDir = at(new RegExp(`fs?(data)?sync\\(\\d+<${esc(path.dirname(final))}>\\)`));
    const upload = at(/execve\(.*"put-object"/);
    expect(fsyncTmp, lines.filter((l) => /sync|rename/.test(l)).join('\n')).toBeGreaterThan(-1);
    expect(rename).toBeGreaterThan(fsyncTmp);
    expect(fsyncDir).toBeGreaterThan(rename);
    expect(upload).toBeGreaterThan(fsyncDir);
  });

  it('every aws call gets the R2 checksum setting and bounded retries in its environment (recorded by aws itself)', async () => {
    const s = await setup();
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ct-awsenv-')), 'env.log');
    wrapDirs.push(path.dirname(log));
    // The aws the tasks start records its argv and its AWS_* environment, then is the real aws.
    const w = wrappers({
      // One append per call: calls run side by side.
      aws:
        `rec="== $*"$'\\n'"$(env | grep -E '^AWS_(REQUEST|RESPONSE|RETRY|MAX)' | sort)"\n` +
        `printf '%s\\n' "$rec" >> "${log}"\nexec "${realBin('aws')}" "$@"`,
    });
    const r = await s.p.run(['backup', '--only', 'addons'], { env: withPath(w) });
    expect(r.code, r.stderr).toBe(0);
    const calls = fs.readFileSync(log, 'utf8').split('== ').filter(Boolean);
    expect(calls.some((c) => c.includes('put-object'))).toBe(true);
    expect(calls.some((c) => c.includes('list-objects'))).toBe(true);
    for (const c of calls)
      expect(c.split('\n').slice(1).filter(Boolean), c).toEqual([
        'AWS_MAX_ATTEMPTS=3',
        'AWS_REQUEST_CHECKSUM_CALCULATION=when_required',
        'AWS_RESPONSE_CHECKSUM_VALIDATION=when_required',
        'AWS_RETRY_MODE=standard',
      ]);
  });

  it("an archive already under this second's name is never replaced: the backup waits for a free name", async () => {
    const s = await setup({ s3: false });
    fs.mkdirSync(s.dir, { recursive: true });
    const { backupName } = await import('../../scripts/backup/manifest.ts');
    // Archives under the names of this second and the next two (a backup written just before, in the same second).
    const now = Date.now();
    const taken = [0, 1, 2].map((i) => path.join(s.dir, `${backupName(s.p.name, new Date(now + i * 1000))}.tar.gz`));
    for (const f of taken) fs.writeFileSync(f, `earlier archive ${f}\n`);
    const r = await s.p.run(['backup', '--only', 'db']);
    expect(r.code, r.stderr).toBe(0);
    for (const f of taken) expect(fs.readFileSync(f, 'utf8')).toBe(`earlier archive ${f}\n`);
    const made = archives(s.dir).filter((a) => !taken.includes(path.join(s.dir, a)));
    expect(made).toHaveLength(1);
    expect(path.join(s.dir, made[0]!)).toBe(r.stdout.trim());
  });

  it('dry-run prints every command and writes nothing', async () => {
    const s = await setup();
    const r = await s.p.run(['--dry-run', 'backup', '--only', 'db,addons']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\[dry-run\] \$ (\S*\/)?pg_dump .*--format=custom/);
    expect(r.stderr).toMatch(/\[dry-run\] \$ tar -C .*addons -cf - \./);
    expect(r.stderr).toMatch(/would write .* upload it to s3:\/\//);
    expect(archives(s.dir)).toEqual([]);
    expect(await listKeys(s3, s.prefix)).toEqual([]);
  });
});

describe('S3 faults through a fault-injecting proxy in front of s3rver', () => {
  const proxies: FaultProxy[] = [];
  afterAll(async () => {
    for (const p of proxies) await p.stop();
  });
  async function proxy(faults: Fault[]): Promise<FaultProxy> {
    const p = await startFaultProxy(s3.endpoint, faults, { lifetimeMs: 5 * 60_000 });
    proxies.push(p);
    return p;
  }
  /** One good backup uploaded straight to s3rver, and an old copy (local and remote) a good run would prune. */
  async function history(env: Record<string, string> = {}) {
    const s = await setup({ env: { BACKUP_KEEP_MIN: '1', ...env } });
    const r = await s.p.run(['backup', '--only', 'addons']);
    expect(r.code, r.stderr).toBe(0);
    const old = oldCopy(s, archives(s.dir)[0]!);
    awsCli(['s3', 'cp', old, `s3://${s3.bucket}/${s.prefix}${path.basename(old)}`, '--only-show-errors']);
    await new Promise((res) => setTimeout(res, 1100));
    return { s, before: archives(s.dir), keysBefore: (await listKeys(s3, s.prefix)).map((k) => k.key).sort() };
  }
  const awsCli = (args: string[]) =>
    execFileSync('aws', ['--endpoint-url', s3.endpoint, ...args], { env: { ...process.env, ...s3Env(s3) }, encoding: 'utf8' });
  const newKey = (x: { s: Setup; before: string[] }) => {
    const added = archives(x.s.dir).filter((f) => !x.before.includes(f));
    expect(added).toHaveLength(1);
    return `${x.s.prefix}${added[0]}`;
  };
  const puts = (p: FaultProxy, key: string) => p.requests.filter((r) => r.method === 'PUT' && r.url.split('?')[0]!.endsWith(`/${key}`));

  it.each(['500', '503'] as const)(
    '%s on every PUT: aws retries 3 times per call, then exit 8; kept locally, no object, no prune',
    async (kind) => {
      const x = await history();
      const p = await proxy([{ kind, method: 'PUT' }]);
      const r = await x.s.p.run(['backup', '--only', 'addons'], { env: { S3_ENDPOINT: p.endpoint } });
      expect(r.code, r.stderr).toBe(8);
      expect(r.stderr).toMatch(/error: the upload did not happen: .*aws exited with code \d+.*the backup stays local/);
      expect(r.stderr).toMatch(kind === '503' ? /SlowDown|reduce your request rate/ : /InternalError|internal error/);
      // Bounded: aws's own 3 attempts (AWS_RETRY_MODE=standard, AWS_MAX_ATTEMPTS=3) for each of the tasks' 3 attempts.
      expect(puts(p, newKey(x))).toHaveLength(9);
      expect(archives(x.s.dir)).toEqual([...x.before, newKey(x).slice(x.s.prefix.length)].sort());
      expect((await listKeys(s3, x.s.prefix)).map((k) => k.key).sort()).toEqual(x.keysBefore);
      expect(r.stderr).not.toMatch(/deleted (local|remote)/);
    },
  );

  it('a connection reset in the middle of every upload body: exit 8, no object under the final key, no prune', async () => {
    const x = await history();
    const p = await proxy([{ kind: 'reset', method: 'PUT' }]);
    const r = await x.s.p.run(['backup', '--only', 'addons'], { env: { S3_ENDPOINT: p.endpoint } });
    expect(r.code, r.stderr).toBe(8);
    expect(r.stderr).toMatch(/the upload did not happen.*the backup stays local/);
    expect(puts(p, newKey(x)).length).toBeGreaterThanOrEqual(3);
    expect((await listKeys(s3, x.s.prefix)).map((k) => k.key).sort()).toEqual(x.keysBefore);
    expect(r.stderr).not.toMatch(/deleted (local|remote)/);
  });

  it('two 500s and a slow first byte (S3_TIMEOUT=2) are retried by aws itself: uploaded and checked in one task attempt', async () => {
    const x = await history({ S3_TIMEOUT: '2' });
    const p = await proxy([
      { kind: '500', method: 'PUT', times: 1 },
      { kind: 'slow', method: 'PUT', times: 1, delayMs: 6000 },
    ]);
    const r = await x.s.p.run(['backup', '--only', 'addons'], { env: { S3_ENDPOINT: p.endpoint } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/retrying/);
    expect(puts(p, newKey(x)).map((q) => q.fault ?? 'ok')).toEqual(['500', 'slow', 'ok']);
    expect((await listKeys(s3, x.s.prefix)).map((k) => k.key)).toContain(newKey(x));
  });

  it('multipart (S3_SINGLE_PUT_MAX lowered): a part failing once is retried; a part failing always leaves no object', async () => {
    const x = await history({ S3_SINGLE_PUT_MAX: '1048576' });
    fs.writeFileSync(path.join(x.s.p.dir, 'addons', 'big.bin'), crypto.randomBytes(20 * 1024 * 1024));
    const once = await proxy([{ kind: '500', method: 'PUT', path: /[?&]partNumber=2(&|$)/, times: 1 }]);
    const ok = await x.s.p.run(['backup', '--only', 'addons'], { env: { S3_ENDPOINT: once.endpoint } });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/uploaded .*size checked/);
    expect(once.requests.some((q) => q.fault === '500' && /uploadId=/.test(q.url))).toBe(true);
    expect(once.requests.some((q) => q.method === 'POST' && /uploadId=/.test(q.url))).toBe(true); // completed
    const key = newKey(x);
    const size = fs.statSync(path.join(x.s.dir, key.slice(x.s.prefix.length))).size;
    expect((await listKeys(s3, x.s.prefix)).find((k) => k.key === key)?.size).toBe(size);

    const y = { s: x.s, before: archives(x.s.dir) };
    const keysBefore = (await listKeys(s3, x.s.prefix)).map((k) => k.key).sort();
    await new Promise((res) => setTimeout(res, 1100));
    const always = await proxy([{ kind: '500', method: 'PUT', path: /[?&]partNumber=2(&|$)/ }]);
    const bad = await x.s.p.run(['backup', '--only', 'addons'], { env: { S3_ENDPOINT: always.endpoint } });
    expect(bad.code, bad.stderr).toBe(8);
    expect(bad.stderr).toMatch(/the upload did not happen.*the backup stays local/);
    expect(archives(x.s.dir)).toHaveLength(y.before.length + 1);
    expect((await listKeys(s3, x.s.prefix)).map((k) => k.key).sort()).toEqual(keysBefore);
  });

  it('more than 1,000 objects under the prefix: backups lists them all, prune finds the old one on the second page', async () => {
    const s = await setup({ env: { BACKUP_KEEP_MIN: '1' } });
    expect((await s.p.run(['backup', '--only', 'addons'])).code).toBe(0);
    // 1,000 objects of another project sort first (page one); this project's old backup is on page two.
    const many = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-many-'));
    wrapDirs.push(many);
    for (let i = 0; i < 1000; i++) {
      const d = new Date(Date.UTC(2021, 0, 1) + i * 3600_000).toISOString().slice(0, 19).replace('T', '_').replace(/:/g, '-');
      fs.writeFileSync(path.join(many, `aaaother_backup_${d}.tar.gz`), 'x');
    }
    awsCli(['s3', 'cp', '--recursive', many, `s3://${s3.bucket}/${s.prefix}`, '--only-show-errors']);
    const old = `${s.p.name}_backup_2020-01-01_00-00-00.tar.gz`;
    awsCli(['s3', 'cp', path.join(s.dir, archives(s.dir)[0]!), `s3://${s3.bucket}/${s.prefix}${old}`, '--only-show-errors']);
    const listed = await s.p.run(['backups', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as unknown[]).length).toBe(1002);
    const r = await s.p.run(['prune']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`deleted remote s3://${s3.bucket}/${s.prefix}${old}`);
    const keys = (await listKeys(s3, s.prefix)).map((k) => k.key);
    expect(keys).toHaveLength(1001);
    expect(keys).not.toContain(`${s.prefix}${old}`);
  });

  it('an rm failing in the middle of a prune: reported (exit 8), the rest kept, the newest never touched', async () => {
    const s = await setup({ s3: true, env: { BACKUP_KEEP_MIN: '1' } });
    expect((await s.p.run(['backup', '--only', 'addons'])).code).toBe(0);
    const [real] = archives(s.dir);
    const olds = ['2020-01-01_00-00-00', '2020-02-01_00-00-00', '2020-03-01_00-00-00'].map((d) => `${s.p.name}_backup_${d}.tar.gz`);
    for (const o of olds) awsCli(['s3', 'cp', path.join(s.dir, real!), `s3://${s3.bucket}/${s.prefix}${o}`, '--only-show-errors']);
    const p = await proxy([{ kind: '500', method: 'DELETE', path: /2020-02-01/ }]);
    const r = await s.p.run(['prune'], { env: { S3_ENDPOINT: p.endpoint } });
    expect(r.code, r.stderr).toBe(8);
    expect(r.stderr).toMatch(new RegExp(`error: cannot delete s3://${s3.bucket}/${s.prefix}${olds[1]}: aws exited with code \\d+`));
    const keys = (await listKeys(s3, s.prefix)).map((k) => k.key);
    expect(keys).toContain(`${s.prefix}${real}`); // the newest
    expect(keys).toContain(`${s.prefix}${olds[1]}`); // the one that failed
    expect(archives(s.dir)).toContain(real);
    // Only DELETEs of the planned old backups were ever sent.
    const deleted = p.requests.filter((q) => q.method === 'DELETE').map((q) => decodeURIComponent(q.url.split('?')[0]!));
    for (const d of deleted) expect(olds.some((o) => d.endsWith(o))).toBe(true);
  });
});
