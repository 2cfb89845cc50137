// `tasks restore` in URL mode against a real PostgreSQL 15 and a real S3 server: pagila round trip, old backup.sh
// archives, and every fault (each leaves the live database exactly as it was).
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { main } from '../../scripts/core/cli.ts';
import { config, tasks } from '../../tasks.ts';
import { serviceTasks } from '../../scripts/tasks/stack.ts';
import { ExitCode } from '../../scripts/core/errors.ts';
import { writeArchive } from '../../scripts/backup/archive.ts';
import { MANIFEST_FORMAT, type Manifest, type ManifestPart } from '../../scripts/backup/manifest.ts';
import { adminQuery, createTestDatabaseInfo, loadPagila, repoRoot, tableFingerprint, type TestDatabase } from '../harness/pg.ts';
import { awsEnv } from '../harness/s3.ts';
import { expectOneError } from '../harness/expect.ts';
import { sink } from '../harness/sink.ts';
import { smallLiveDatabase, urlModeRoot } from '../harness/url-project.ts';

const pg = inject('pg');
const s3 = inject('s3');
const PROJECT = 'rt';
const testConfig = {
  ...config,
  migrate: undefined,
  seedCommand: undefined,
  backupParts: [
    { name: 'database', kind: 'database' as const },
    { name: 'addons', kind: 'path' as const, path: 'addons' },
  ],
  appServices: [],
  healthCheck: undefined,
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const cleanup: string[] = [];
function tmp(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanup.push(d);
  return d;
}

const makeRoot = () => urlModeRoot(tmp('ct-restore-'));

async function restoreRun(
  root: string,
  db: TestDatabase,
  argv: string[],
  o: { env?: Record<string, string>; tty?: boolean; answers?: unknown[]; config?: typeof config } = {},
): Promise<Run> {
  const stdout = sink();
  const stderr = sink();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    APP_ENV: 'development',
    COMPOSE_PROJECT_NAME: PROJECT,
    DATABASE_URL: db.url,
    POSTGRES_DB: db.name,
    ...o.env,
  };
  const code = await main({
    argv,
    env,
    root,
    tasks,
    serviceTasks,
    config: o.config ?? testConfig,
    stdout,
    stderr,
    stdinIsTTY: Boolean(o.tty),
    promptAnswers: o.answers,
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

function sh(argv: string[], o: { cwd?: string; env?: Record<string, string> } = {}): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: o.cwd, env: { ...process.env, ...o.env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

const sha256 = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** pg_dump -Fc of a test database, as the app role would (URL mode). */
function dump(db: TestDatabase, file: string): void {
  sh([path.join(pg.binDir, 'pg_dump'), '--format=custom', '--dbname', db.url, '--file', file]);
}

/** A backup archive in the product's format: manifest.json + database.dump + addons.tar (written by archive.ts). */
async function makeArchive(
  dir: string,
  name: string,
  dumpFile: string,
  addonsDir: string,
  /** The database it is a backup of (a restore into another one needs --as). */
  database: string,
  edit: (m: Manifest) => void = () => undefined,
): Promise<string> {
  const work = tmp('ct-parts-');
  const addonsTar = path.join(work, 'addons.tar');
  sh(['tar', '-cf', addonsTar, '-C', addonsDir, '.']);
  const parts: ManifestPart[] = [
    {
      name: 'database',
      kind: 'database',
      file: 'database.dump',
      format: 'pg_dump-custom',
      size: fs.statSync(dumpFile).size,
      sha256: sha256(dumpFile),
    },
    {
      name: 'addons',
      kind: 'path',
      file: 'addons.tar',
      format: 'tar',
      path: 'addons',
      size: fs.statSync(addonsTar).size,
      sha256: sha256(addonsTar),
    },
  ];
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: 1,
    name,
    createdAt: new Date().toISOString(),
    appEnv: 'development',
    project: PROJECT,
    database,
    serverVersion: '15.0',
    images: {},
    tool: { name: 'compose-tasks', version: 'test' },
    reason: 'manual',
    parts,
  };
  edit(manifest);
  const out = path.join(dir, `${name}.tar.gz`);
  fs.rmSync(out, { force: true });
  await writeArchive(out, [
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest, null, 2)), level: 1 },
    { name: 'database.dump', file: dumpFile, level: 0 },
    { name: 'addons.tar', file: addonsTar, level: 0 },
  ]);
  return out;
}

async function leftovers(db: string): Promise<string[]> {
  const out = await adminQuery(pg, 'postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${db}\\_%' ORDER BY 1`);
  return out.split('\n').filter(Boolean);
}

let pagila: TestDatabase;
let pagilaDump = '';
let addonsSrc = '';

beforeAll(async () => {
  pagila = await createTestDatabaseInfo(pg, 'rpagila');
  await loadPagila(pg, pagila.name);
  pagilaDump = path.join(tmp('ct-dump-'), 'pagila.dump');
  dump(pagila, pagilaDump);
  addonsSrc = tmp('ct-addons-');
  fs.mkdirSync(path.join(addonsSrc, 'my_module'));
  fs.writeFileSync(path.join(addonsSrc, 'my_module', '__manifest__.py'), "{'name': 'from the backup'}\n");
}, 300_000);

afterAll(() => {
  for (const d of cleanup) fs.rmSync(d, { recursive: true, force: true });
});

/** A small live database: faults must leave it exactly as it was. */
const victim = () => smallLiveDatabase(pg, 'rvictim');

describe('tasks restore (URL mode, real PostgreSQL)', () => {
  it("puts pagila back (rows deleted, a table dropped): every table's row count and content checksum as before; addons back", async () => {
    const root = makeRoot();
    const before = await tableFingerprint(pg, pagila.name);
    const name = `${PROJECT}_backup_2026-11-20_02-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, pagila.name);
    await adminQuery(
      pg,
      pagila.name,
      'DELETE FROM payment WHERE amount > 5; DROP TABLE film_category CASCADE; UPDATE customer SET email = NULL',
    );
    expect(await tableFingerprint(pg, pagila.name)).not.toEqual(before);

    const r = await restoreRun(root, pagila, ['restore', name, '--yes', '--no-safety-backup', '--jobs', '2']);
    expect(r.code, r.stderr).toBe(0);
    expect(await tableFingerprint(pg, pagila.name)).toEqual(before);
    expect(r.stderr).toMatch(/pg_restore .*--exit-on-error.*--jobs 2/);
    expect(r.stderr).not.toContain(pagila.password);
    // Objects are owned by the app role, the swap left no temporary or previous database behind.
    expect(await adminQuery(pg, pagila.name, "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'payment'")).toBe(
      pagila.user,
    );
    expect(await leftovers(pagila.name)).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('from the backup');
    expect(fs.readdirSync(root).filter((f) => f.includes('.restore-'))).toEqual([]);
  });

  it('round trip with the real backup task; the safety archive of the replaced state rolls it back with the printed command', async () => {
    const db = await createTestDatabaseInfo(pg, 'rround');
    await loadPagila(pg, db.name);
    const root = makeRoot();
    const before = await tableFingerprint(pg, db.name);
    const b = await restoreRun(root, db, ['backup']);
    expect(b.code, b.stderr).toBe(0);
    const name = path.basename(b.stdout.trim()).replace(/\.tar\.gz$/, '');
    expect(name).toMatch(/^rt_backup_/);
    await adminQuery(pg, db.name, 'DELETE FROM payment WHERE payment_id % 3 = 0; DROP TABLE film_actor CASCADE');
    fs.writeFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), "{'name': 'changed'}\n");
    const changed = await tableFingerprint(pg, db.name);
    await new Promise((r) => setTimeout(r, 1100)); // backup names have one-second resolution

    const r = await restoreRun(root, db, ['restore', name, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(await tableFingerprint(pg, db.name)).toEqual(before);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
    const m = /roll back with: tasks (restore (rt_backup_\S+) --yes --no-safety-backup)/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const manifest = JSON.parse(
      spawnSync('tar', ['-xzOf', path.join(root, 'backup', `${m![2]}.tar.gz`), 'manifest.json'], { encoding: 'utf8' }).stdout,
    ) as Manifest;
    expect(manifest.reason).toBe('pre-restore');
    // Written after the swap from the copies kept aside: the parts this restore replaced, each the state before it.
    const restored = JSON.parse(
      spawnSync('tar', ['-xzOf', path.join(root, 'backup', `${name}.tar.gz`), 'manifest.json'], { encoding: 'utf8' }).stdout,
    ) as Manifest;
    expect(manifest.parts.map((p) => p.name)).toEqual(restored.parts.map((p) => p.name));

    const back = await restoreRun(root, db, m![1]!.split(' '));
    expect(back.code, back.stderr).toBe(0);
    expect(await tableFingerprint(pg, db.name)).toEqual(changed);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('changed');
  });

  it('restores "latest" and a name given with .tar.gz; --keep-old keeps the previous database', async () => {
    const { db } = await victim();
    const root = makeRoot();
    await makeArchive(path.join(root, 'backup'), `${PROJECT}_backup_2026-01-01_00-00-00`, pagilaDump, addonsSrc, db.name);
    await makeArchive(path.join(root, 'backup'), `${PROJECT}_backup_2026-02-01_00-00-00`, pagilaDump, addonsSrc, db.name);
    const r = await restoreRun(root, db, ['restore', 'latest', '--yes', '--no-safety-backup', '--keep-old']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`latest backup: ${PROJECT}_backup_2026-02-01_00-00-00`);
    expect(await tableFingerprint(pg, db.name)).toEqual(await tableFingerprint(pg, pagila.name));
    const left = await leftovers(db.name);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(new RegExp(`^${db.name}_old_\\d{14}$`));
    expect(await adminQuery(pg, left[0]!, 'SELECT count(*) FROM keep')).toBe('300');
    const again = await restoreRun(root, db, [
      'restore',
      `${PROJECT}_backup_2026-01-01_00-00-00.tar.gz`,
      '--yes',
      '--no-safety-backup',
      '--only',
      'db',
    ]);
    expect(again.code, again.stderr).toBe(0);
  });

  it('downloads from S3 when the archive is not local (verified, then kept under backup/)', async () => {
    const { db } = await victim();
    const root = makeRoot();
    const prefix = `restore-dl-${crypto.randomBytes(3).toString('hex')}/`;
    const name = `${PROJECT}_backup_2026-03-01_00-00-00`;
    const made = await makeArchive(tmp('ct-up-'), name, pagilaDump, addonsSrc, db.name);
    sh(['aws', '--endpoint-url', s3.endpoint, 's3', 'cp', made, `s3://${s3.bucket}/${prefix}${name}.tar.gz`, '--only-show-errors'], {
      env: awsEnv(s3),
    });
    const env = { S3_BUCKET: s3.bucket, S3_PREFIX: prefix, S3_ENDPOINT: s3.endpoint, S3_REGION: s3.region, ...awsEnv(s3) };
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await tableFingerprint(pg, db.name)).toEqual(await tableFingerprint(pg, pagila.name));
    expect(fs.readdirSync(path.join(root, 'backup')).filter((f) => f !== '.lock' && f !== '.verified.json')).toEqual([`${name}.tar.gz`]);
  });

  it('restores an archive laid out like the old backup.sh output (no manifest: says so, still reads the whole dump)', async () => {
    const { db } = await victim();
    const root = makeRoot();
    // Exactly what backup.sh did: pg_dump -Fc, tar czf of filestore and addons, a backup.info, then one tar czf.
    const work = tmp('ct-legacy-');
    const filestore = path.join(tmp('ct-fs-'), 'filestore');
    fs.mkdirSync(path.join(filestore, 'odoo', 'ab'), { recursive: true });
    fs.writeFileSync(path.join(filestore, 'odoo', 'ab', 'abcdef'), 'attachment');
    dump(pagila, path.join(work, 'database.dump'));
    sh(['tar', 'czf', path.join(work, 'filestore.tar.gz'), '-C', path.dirname(filestore), 'filestore']);
    sh(['tar', 'czf', path.join(work, 'addons.tar.gz'), '-C', addonsSrc, '.']);
    fs.writeFileSync(path.join(work, 'backup.info'), `Backup date: 2025-06-01 02:00:00\nDatabase: odoo\nOdoo version: 17\n`);
    const name = 'odoo_backup_2025-06-01_02-00-00';
    sh(['tar', 'czf', path.join(root, 'backup', `${name}.tar.gz`), 'database.dump', 'filestore.tar.gz', 'addons.tar.gz', 'backup.info'], {
      cwd: work,
    });

    // backup.info says it is a backup of database odoo: restoring it into another one needs --as (or --force).
    const refusedRun = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup', '--only', 'db,addons']);
    expect(refusedRun.code).toBe(ExitCode.refused);
    expectOneError(refusedRun, new RegExp(`it is a backup of database odoo, this restores into ${db.name}: refused`));
    expect(refusedRun.stderr).toContain(`--as ${db.name}`);
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup', '--only', 'db,addons', '--as', db.name]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/old backup\.sh archive: it has no checksums/);
    expect(await tableFingerprint(pg, db.name)).toEqual(await tableFingerprint(pg, pagila.name));
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('from the backup');
  });
});

describe('tasks restore --only: the safety archive holds the replaced part only', () => {
  const reasonAndParts = (root: string) =>
    fs
      .readdirSync(path.join(root, 'backup'))
      .filter((f) => f.endsWith('.tar.gz'))
      .map((f) => JSON.parse(sh(['tar', '-xzOf', path.join(root, 'backup', f), 'manifest.json'])) as Manifest)
      .filter((m) => m.reason === 'pre-restore')
      .map((m) => m.parts.map((p) => p.name));

  it('--only addons: the addons back, the database untouched, a safety archive of the addons alone', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-05-01_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--only', 'addons']);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('from the backup');
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(reasonAndParts(root)).toEqual([['addons']]);
    expect(r.stderr).not.toContain('pg_dump');
  });

  it('--only db in URL mode with the real project config and the engine down: restored, safety archive of the database alone', async () => {
    const { db } = await victim();
    const root = makeRoot();
    fs.cpSync(path.join(repoRoot, 'compose'), path.join(root, 'compose'), { recursive: true });
    const name = `${PROJECT}_backup_2026-05-02_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    // A docker whose engine cannot be reached (what a laptop with Docker stopped, or a VPS with a managed database, has).
    const bin = tmp('ct-nodocker-');
    for (const cmd of ['docker', 'docker-compose'])
      fs.writeFileSync(
        path.join(bin, cmd),
        '#!/bin/sh\necho "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2\nexit 1\n',
        { mode: 0o755 },
      );
    // The shipped config: a filestore volume part and the odoo app service, which a database-only restore does not need.
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--only', 'db'], {
      env: { PATH: `${bin}:${process.env.PATH}` },
      config: { ...config, migrate: undefined, seedCommand: undefined },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(await tableFingerprint(pg, db.name)).toEqual(await tableFingerprint(pg, pagila.name));
    expect(r.stderr).toContain('no app service to stop: the stack cannot be reached');
    expect(reasonAndParts(root)).toEqual([['database']]);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
  });
});

describe('tasks restore refuses, and the live database stays as it was', () => {
  it('unknown name: lists the nearest names, exit 2', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    for (const d of ['2026-05-01_02-00-00', '2026-05-06_02-00-00', '2026-06-20_02-00-00', '2025-01-01_02-00-00']) {
      fs.writeFileSync(path.join(root, 'backup', `${PROJECT}_backup_${d}.tar.gz`), 'x');
    }
    const r = await restoreRun(root, db, ['restore', `${PROJECT}_backup_2026-05-05_02-00-00`, '--yes']);
    expect(r.code).toBe(ExitCode.usage);
    expectOneError(r, /no backup named rt_backup_2026-05-05_02-00-00/);
    expect(r.stderr).toMatch(/nearest: rt_backup_2026-05-06_02-00-00, rt_backup_2026-05-01_02-00-00/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it('S3 unreachable: one clear line, exit 8', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const env = { S3_BUCKET: 'nowhere', S3_ENDPOINT: 'http://127.0.0.1:9', S3_REGION: 'us-east-1', AWS_MAX_ATTEMPTS: '1', ...awsEnv(s3) };
    const r = await restoreRun(root, db, ['restore', `${PROJECT}_backup_2026-05-05_02-00-00`, '--yes'], { env });
    expect(r.code).toBe(ExitCode.uploadFailed);
    expectOneError(r, /cannot check s3:\/\/nowhere\/.*aws exited with code 255/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it('a part whose checksum differs from the manifest: refused (exit 3)', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const bad = path.join(tmp('ct-bad-'), 'bad.dump');
    fs.copyFileSync(pagilaDump, bad);
    const fd = fs.openSync(bad, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, 5000);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, 5000);
    fs.closeSync(fd);
    const name = `${PROJECT}_backup_2026-04-01_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, bad, addonsSrc, db.name, (m) => {
      m.parts[0]!.sha256 = sha256(pagilaDump);
    });
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup']);
    expect(r.code).toBe(ExitCode.refused);
    expectOneError(r, /database\.dump \(part database\) has sha256 .* the manifest says/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(await leftovers(db.name)).toEqual([]);
  });

  it('a truncated archive: refused', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-02_00-00-00`;
    const file = await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup']);
    expect(r.code).not.toBe(0);
    expectOneError(r, /corrupt or truncated/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it('members with ../, an absolute path or a link to /: the whole archive is rejected before extraction', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const kinds: Array<[string, string]> = [
      ['dotdot', "add('../x', b'evil')"],
      ['absolute', "add('/etc/x', b'evil')"],
      ['symlink', "l = tarfile.TarInfo('database.dump'); l.type = tarfile.SYMTYPE; l.linkname = '/'; t.addfile(l)"],
    ];
    for (const [i, [kind, py]] of kinds.entries()) {
      const name = `${PROJECT}_backup_2026-04-1${i}_00-00-00`;
      const file = path.join(root, 'backup', `${name}.tar.gz`);
      const manifest = {
        format: MANIFEST_FORMAT,
        version: 1,
        name,
        createdAt: new Date().toISOString(),
        appEnv: 'development',
        project: PROJECT,
        database: db.name,
        images: {},
        tool: { name: 't', version: '1' },
        reason: 'manual',
        parts: [{ name: 'database', kind: 'database', file: 'database.dump', format: 'pg_dump-custom', size: 4, sha256: '' }],
      };
      const script = [
        'import tarfile, io, sys, json',
        't = tarfile.open(sys.argv[1], "w:gz", format=tarfile.GNU_FORMAT)',
        'def add(n, data):\n  i = tarfile.TarInfo(n); i.size = len(data); t.addfile(i, io.BytesIO(data))',
        'add("manifest.json", sys.argv[2].encode())',
        py,
        't.close()',
      ].join('\n');
      sh(['python3', '-c', script, file, JSON.stringify(manifest)]);
      const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup']);
      expect(r.code, `${kind}: ${r.stderr}`).toBe(ExitCode.refused);
      expectOneError(
        r,
        kind === 'symlink'
          ? /refused: database\.dump: link to \//
          : kind === 'dotdot'
            ? /refused: \.\.\/x: path leaves the folder/
            : /refused: \/etc\/x: absolute path/,
      );
      expect(fs.existsSync(path.join(root, 'x'))).toBe(false);
      expect(fs.readdirSync(path.join(root, 'backup')).filter((f) => f.startsWith('.') && f !== '.lock')).toEqual([]);
    }
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it("a folder part's tar with a link pointing outside: refused while verifying, before any prompt (exit 3), nothing touched", async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const evil = tmp('ct-evil-');
    fs.mkdirSync(path.join(evil, 'my_module'));
    fs.writeFileSync(path.join(evil, 'my_module', '__manifest__.py'), "{'name': 'evil'}\n");
    fs.symlinkSync('/etc/passwd', path.join(evil, 'my_module', 'passwd'));
    const name = `${PROJECT}_backup_2026-04-13_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, evil, db.name);
    // No --yes and no terminal: the confirmation would refuse, so this error shows the check came first.
    const r = await restoreRun(root, db, ['restore', name]);
    expect(r.code).toBe(ExitCode.refused);
    expectOneError(r, /addons\.tar is refused: \.\/my_module\/passwd: link to \/etc\/passwd points outside/);
    expect(r.stderr).not.toMatch(/no terminal/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(await leftovers(db.name)).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
  });

  it('a dump from a newer PostgreSQL major than the server: refused with both versions named (exit 6)', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-03_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name, (m) => {
      m.serverVersion = '99.1';
    });
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup']);
    expect(r.code).toBe(ExitCode.prerequisite);
    expectOneError(r, /dumped from PostgreSQL 99\.1, newer than the target server PostgreSQL 15/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it('a backup of another project or APP_ENV needs --force (exit 3 without)', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-04_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name, (m) => {
      m.appEnv = 'production';
      m.project = 'other';
    });
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup']);
    expect(r.code).toBe(ExitCode.refused);
    expectOneError(r, /taken from project other, this is rt; it was taken in APP_ENV=production, this is APP_ENV=development: refused/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    const forced = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
  });

  it('a backup of another database needs --as <target> (or --force): refused naming both, nothing touched', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-12_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, 'accounting');
    const before = sha256(path.join(root, 'backup', `${name}.tar.gz`));
    const r = await restoreRun(root, db, ['restore', name, '--yes']);
    expect(r.code).toBe(ExitCode.refused);
    expectOneError(r, new RegExp(`${name}: it is a backup of database accounting, this restores into ${db.name}: refused`));
    expect(r.stderr).toContain(`pass --as ${db.name} to restore it into ${db.name} anyway (or --force)`);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(fs.readdirSync(path.join(root, 'backup')).filter((f) => f.endsWith('.tar.gz'))).toEqual([`${name}.tar.gz`]);
    expect(sha256(path.join(root, 'backup', `${name}.tar.gz`))).toBe(before);
    const forced = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stderr).toContain('(accepted by --force)');
    const as = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup', '--as', db.name]);
    expect(as.code, as.stderr).toBe(0);
    expect(await tableFingerprint(pg, db.name)).toEqual(await tableFingerprint(pg, pagila.name));
  });

  describe('open sessions on the target', () => {
    /** A psql session on `db` that stays open (pg_sleep) until killed; resolves once PostgreSQL shows it. */
    async function openSession(db: string, o: { role?: string; url?: string; app: string }) {
      const argv = o.url
        ? [path.join(pg.binDir, 'psql'), '-X', o.url, '-c', 'SELECT pg_sleep(300)']
        : [path.join(pg.binDir, 'psql'), '-X', '-h', pg.dir, '-p', String(pg.port), '-U', o.role!, '-d', db, '-c', 'SELECT pg_sleep(300)'];
      const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', env: { ...process.env, PGAPPNAME: o.app } });
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      let pid = '';
      for (let i = 0; i < 100 && !pid; i++) {
        pid = await adminQuery(
          pg,
          'postgres',
          `SELECT pid FROM pg_stat_activity WHERE datname = '${db}' AND application_name = '${o.app}'`,
        );
        if (!pid) await new Promise((r) => setTimeout(r, 100));
      }
      expect(pid, 'the session to show in pg_stat_activity').not.toBe('');
      return { pid, child, exited };
    }

    it("another role's session: refused before anything is done, naming the role, the application and the pid", async () => {
      const { db, print } = await victim();
      const root = makeRoot();
      const name = `${PROJECT}_backup_2026-04-13_00-00-00`;
      await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
      const role = `reporting_${crypto.randomBytes(3).toString('hex')}`;
      await adminQuery(pg, 'postgres', `CREATE ROLE ${role} LOGIN`);
      const s = await openSession(db.name, { role, app: 'nightly-report' });
      try {
        // With a safety backup asked for: it must not be taken either.
        const r = await restoreRun(root, db, ['restore', name, '--yes']);
        expect(r.code).toBe(ExitCode.refused);
        expectOneError(
          r,
          new RegExp(
            `database ${db.name} has 1 open session of another role: role ${role} \\(application "nightly-report"\\), pid ${s.pid}`,
          ),
        );
        expect(r.stderr).toContain(`SELECT pg_terminate_backend(${s.pid})`);
        expect(r.stderr).not.toMatch(/safety backup of the current state|restoring the database into/);
        expect(fs.readdirSync(path.join(root, 'backup')).filter((f) => f.endsWith('.tar.gz'))).toEqual([`${name}.tar.gz`]);
        expect(await tableFingerprint(pg, db.name)).toEqual(print);
        expect(await leftovers(db.name)).toEqual([]);
        expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
        // Still open: nothing ended it.
        expect(await adminQuery(pg, 'postgres', `SELECT count(*) FROM pg_stat_activity WHERE pid = ${s.pid}`)).toBe('1');
      } finally {
        s.child.kill('SIGKILL');
        await s.exited;
      }
    });

    it("another role's session opened while the backup loads: refused before the app is stopped, side database dropped", async () => {
      const { db, print } = await victim();
      const root = makeRoot();
      const name = `${PROJECT}_backup_2026-04-13_00-00-01`;
      await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
      const role = `reporting_${crypto.randomBytes(3).toString('hex')}`;
      await adminQuery(pg, 'postgres', `CREATE ROLE ${role} LOGIN`);
      // A report connects to the live database just as pg_restore starts loading the side copy.
      const bin = tmp('ct-fakebin-');
      const psql = [path.join(pg.binDir, 'psql'), '-X', '-h', pg.dir, '-p', String(pg.port), '-U', role, '-d', db.name];
      const waitQuery = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'late-report'";
      fs.writeFileSync(
        path.join(bin, 'pg_restore'),
        `#!/bin/bash
case " $* " in *" --dbname "*)
  PGAPPNAME=late-report setsid ${psql.join(' ')} -c 'SELECT pg_sleep(300)' >/dev/null 2>&1 < /dev/null &
  echo $! > "${bin}/session.pid"
  for i in $(seq 50); do
    [ "$(${psql.slice(0, -2).join(' ')} -d postgres -At -c "${waitQuery}")" = 1 ] && break
    sleep 0.1
  done ;;
esac
exec ${path.join(pg.binDir, 'pg_restore')} "$@"
`,
        { mode: 0o755 },
      );
      try {
        const r = await restoreRun(root, db, ['restore', name, '--yes'], { env: { PATH: `${bin}:${process.env.PATH}` } });
        expect(r.code, r.stderr).toBe(ExitCode.refused);
        expectOneError(
          r,
          new RegExp(`database ${db.name} has 1 open session of another role: role ${role} \\(application "late-report"\\)`),
        );
        expect(r.stderr).toContain('loading the backup into');
        expect(r.stderr).not.toMatch(/RENAME TO|safety backup of the replaced/);
        expect(await tableFingerprint(pg, db.name)).toEqual(print);
        expect(await leftovers(db.name)).toEqual([]);
        expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
        expect(fs.readdirSync(root).filter((f) => f.includes('.restore-'))).toEqual([]);
      } finally {
        const pid = Number(fs.readFileSync(path.join(bin, 'session.pid'), 'utf8'));
        spawnSync('kill', ['-9', String(pid)]);
      }
    });

    it("the app role's own session is ended and the restore goes through", async () => {
      const { db } = await victim();
      const root = makeRoot();
      const name = `${PROJECT}_backup_2026-04-14_00-00-00`;
      await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
      const s = await openSession(db.name, { url: db.url, app: 'odoo-worker' });
      try {
        const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup']);
        expect(r.code, r.stderr).toBe(0);
        expect(await tableFingerprint(pg, db.name)).toEqual(await tableFingerprint(pg, pagila.name));
        expect(await s.exited).not.toBe(0);
      } finally {
        s.child.kill('SIGKILL');
      }
    });
  });

  it('"latest" never picks a backup dated in the future: refused naming it (exit 3); named explicitly it restores', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    await makeArchive(path.join(root, 'backup'), `${PROJECT}_backup_2026-02-01_00-00-00`, pagilaDump, addonsSrc, db.name);
    const future = `${PROJECT}_backup_2099-01-01_00-00-00`;
    await makeArchive(path.join(root, 'backup'), future, pagilaDump, addonsSrc, db.name);
    const r = await restoreRun(root, db, ['restore', 'latest', '--yes', '--no-safety-backup']);
    expect(r.code).toBe(ExitCode.refused);
    expectOneError(r, new RegExp(`latest: the newest backup, ${future}, is dated after now \\(.*\\): the clock or its name is wrong`));
    expect(r.stderr).toContain('name the backup to restore');
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    const named = await restoreRun(root, db, ['restore', `${PROJECT}_backup_2026-02-01_00-00-00`, '--yes', '--no-safety-backup']);
    expect(named.code, named.stderr).toBe(0);
  });

  it('production: --yes alone is refused without a terminal (exit 3); --yes --force restores', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-10_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name, (m) => {
      m.appEnv = 'production';
    });
    const env = { APP_ENV: 'production' };
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup'], { env });
    expect(r.code, r.stderr).toBe(ExitCode.refused);
    expectOneError(r, /refused, this is guarded and there is no terminal/);
    expect(r.stderr).toContain('--yes --force');
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    const forced = await restoreRun(root, db, ['restore', name, '--yes', '--force', '--no-safety-backup'], { env });
    expect(forced.code, forced.stderr).toBe(0);
    expect(await tableFingerprint(pg, db.name)).toEqual(await tableFingerprint(pg, pagila.name));
  });

  it('no terminal and no --yes: refused (exit 3), nothing touched', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-05_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    const r = await restoreRun(root, db, ['restore', name]);
    expect(r.code).toBe(ExitCode.refused);
    expectOneError(r, /refused, no terminal to confirm in/);
    expect(r.stderr).toContain('pass --yes');
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
  });

  it('on a TTY: shows what is replaced, asks for the database name; Ctrl-C (exit 130), a wrong name (exit 3) change nothing', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-06_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    const ctrlC = await restoreRun(root, db, ['restore', name, '--no-safety-backup'], { tty: true, answers: [new Error('ctrl-c')] });
    expect(ctrlC.code).toBe(ExitCode.sigint);
    expect(ctrlC.stderr).toContain(`into database ${db.name}`);
    expect(ctrlC.stderr).toContain('parts: database, addons');
    const wrong = await restoreRun(root, db, ['restore', name, '--no-safety-backup'], { tty: true, answers: ['postgres'] });
    expect(wrong.code).toBe(ExitCode.refused);
    expectOneError(wrong, new RegExp(`confirmation did not match "${db.name}"`));
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    const typed = await restoreRun(root, db, ['restore', name, '--no-safety-backup'], { tty: true, answers: [db.name] });
    expect(typed.code, typed.stderr).toBe(0);
    expect(await tableFingerprint(pg, db.name)).toEqual(await tableFingerprint(pg, pagila.name));
  });

  it('pg_restore failing midway: non-zero exit, the original database in place, the temporary one dropped, addons untouched', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-07_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    // Fault injection: a pg_restore that loads the schema for real, then dies (only when it writes to a database).
    const bin = tmp('ct-fakebin-');
    fs.writeFileSync(
      path.join(bin, 'pg_restore'),
      [
        '#!/bin/bash',
        `real=${path.join(pg.binDir, 'pg_restore')}`,
        'case " $* " in *" --dbname "*) "$real" --section=pre-data "$@"; ' +
          'echo "pg_restore: error: could not execute query: server closed the connection unexpectedly" >&2; exit 1 ;; esac',
        'exec "$real" "$@"',
      ].join('\n'),
      { mode: 0o755 },
    );
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup'], { env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code).toBe(1);
    expectOneError(r, /server closed the connection unexpectedly.*nothing was changed/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(await leftovers(db.name)).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
  });

  it('the folder swap failing after the database swap: both swapped back, "the previous state is back", nothing left', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-07_00-00-01`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    // Fault injection: the folder swap's rename fails (a busy mount point), after the database was swapped in.
    const bin = tmp('ct-fakebin-');
    fs.writeFileSync(
      path.join(bin, 'bash'),
      `#!/bin/sh
case "$2" in *'mode=$3 stage='*) echo "mv: cannot move 'addons': Device or resource busy" >&2; exit 1;; esac
exec /bin/bash "$@"
`,
      { mode: 0o755 },
    );
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup'], { env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code, r.stderr).toBe(1);
    expectOneError(r, /Device or resource busy.*; nothing was changed \(the previous state is back\)/);
    expect(r.stderr).toMatch(/ALTER DATABASE .* RENAME TO .*_old_\d{14}/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(await leftovers(db.name)).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
    expect(fs.readdirSync(root).filter((f) => f.includes('.restore-'))).toEqual([]);
    const journal = path.join(root, 'backup', '.journal');
    expect(fs.existsSync(journal) ? fs.readdirSync(journal) : []).toEqual([]);
  });

  it('a rollback step that hangs (and ignores SIGTERM) is stopped and reported with the command that finishes it', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-08_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    const bin = tmp('ct-fakebin-');
    fs.writeFileSync(
      path.join(bin, 'pg_restore'),
      `#!/bin/bash
case " $* " in *" --dbname "*) echo "pg_restore: error: connection lost" >&2; exit 1 ;; esac
exec ${path.join(pg.binDir, 'pg_restore')} "$@"
`,
      { mode: 0o755 },
    );
    // The folder's swap back never ends and ignores SIGTERM (as an uninterruptible one-off container does).
    fs.writeFileSync(
      path.join(bin, 'bash'),
      `#!/bin/sh
case "$2" in *'old=$2/old'*) trap '' TERM; echo $$ > "${bin}/hung.pid"; while :; do sleep 1; done;; esac
exec /bin/bash "$@"
`,
      { mode: 0o755 },
    );
    const t0 = Date.now();
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup'], {
      env: { PATH: `${bin}:${process.env.PATH}`, RESTORE_ROLLBACK_TIMEOUT: '2' },
    });
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain("undo of 'load the database and stage the folders' failed: ");
    expect(r.stderr).toMatch(/failed: bash did not finish within 2 s and was stopped \(finish it by hand: bash -c /);
    expectOneError(r, /connection lost; the undo did not finish: load the database and stage the folders/);
    expect(r.stderr).toContain('tasks recover retries what was not undone');
    const pid = Number(fs.readFileSync(path.join(bin, 'hung.pid'), 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow();
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
  });

  it('SIGINT during pg_restore: exit 130, the original database in place, the temporary one dropped, addons untouched', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-11_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    // A pg_restore that loads the schema for real, then hangs (so the interrupt lands mid-restore).
    const bin = tmp('ct-fakebin-');
    fs.writeFileSync(
      path.join(bin, 'pg_restore'),
      [
        '#!/bin/bash',
        `real=${path.join(pg.binDir, 'pg_restore')}`,
        'case " $* " in *" --dbname "*) "$real" --section=pre-data "$@"; touch "$MARK"; exec sleep 60 ;; esac',
        'exec "$real" "$@"',
      ].join('\n'),
      { mode: 0o755 },
    );
    const mark = path.join(bin, 'started');
    const stdout = sink();
    const stderr = sink();
    const ac = new AbortController();
    const env: Record<string, string> = {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: process.env.HOME ?? '/root',
      MARK: mark,
      APP_ENV: 'development',
      COMPOSE_PROJECT_NAME: PROJECT,
      DATABASE_URL: db.url,
      POSTGRES_DB: db.name,
    };
    const running = main({
      argv: ['restore', name, '--yes', '--no-safety-backup'],
      env,
      root,
      tasks,
      serviceTasks,
      config: testConfig,
      stdout,
      stderr,
      stdinIsTTY: false,
      signal: ac.signal,
    });
    for (let i = 0; i < 600 && !fs.existsSync(mark); i++) await new Promise((r) => setTimeout(r, 100));
    expect(fs.existsSync(mark), stderr.text).toBe(true);
    ac.abort('SIGINT');
    const code = await running;
    expect(code, stderr.text).toBe(ExitCode.sigint);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(await leftovers(db.name)).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
    expect(fs.readdirSync(root).filter((f) => f.includes('.restore-'))).toEqual([]);
  });

  it('disk too small to stage a folder beside the live one: refused before loading (exit 6), with the figure', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a small tmpfs: run the integration tests as root (CI does)');
    const { db, print } = await victim();
    // The project (and so addons/ and the staging beside it) on a 300 KB disk; the backups elsewhere.
    const root = tmp('ct-smallroot-');
    sh(['mount', '-t', 'tmpfs', '-o', 'size=300k', 'tmpfs', root]);
    try {
      urlModeRoot(root);
      const big = tmp('ct-bigaddons-');
      fs.mkdirSync(path.join(big, 'my_module'));
      fs.writeFileSync(path.join(big, 'my_module', '__manifest__.py'), "{'name': 'from the backup'}\n");
      fs.writeFileSync(path.join(big, 'my_module', 'big.bin'), crypto.randomBytes(1024 * 1024));
      const backups = tmp('ct-backups-');
      const name = `${PROJECT}_backup_2026-04-09_00-00-00`;
      await makeArchive(backups, name, pagilaDump, big, db.name);
      const r = await restoreRun(root, db, ['restore', name, '--yes'], { env: { BACKUP_DIR: backups } });
      expect(r.code, r.stderr).toBe(ExitCode.prerequisite);
      expectOneError(r, new RegExp(`not enough free space in ${root} to stage addons beside addons: 1\\.0 MB needed, [\\d.]+ KB free`));
      expect(r.stderr).toContain('nothing was changed');
      // Refused before anything was loaded: no side database was ever created.
      expect(r.stderr).not.toContain('loading the backup into');
      expect(await leftovers(db.name)).toEqual([]);
      expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
      expect(fs.readdirSync(root).filter((f) => f.includes('.restore-'))).toEqual([]);
    } finally {
      sh(['umount', root]);
    }
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it('disk too small for the download: refused before downloading (exit 6), nothing left behind', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a small tmpfs: run the integration tests as root (CI does)');
    const { db, print } = await victim();
    const root = makeRoot();
    const prefix = `restore-small-${crypto.randomBytes(3).toString('hex')}/`;
    const name = `${PROJECT}_backup_2026-04-08_00-00-00`;
    const made = await makeArchive(tmp('ct-up-'), name, pagilaDump, addonsSrc, db.name);
    expect(fs.statSync(made).size).toBeGreaterThan(512 * 1024);
    sh(['aws', '--endpoint-url', s3.endpoint, 's3', 'cp', made, `s3://${s3.bucket}/${prefix}${name}.tar.gz`, '--only-show-errors'], {
      env: awsEnv(s3),
    });
    const small = tmp('ct-tmpfs-');
    sh(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small]);
    try {
      const env = {
        BACKUP_DIR: small,
        S3_BUCKET: s3.bucket,
        S3_PREFIX: prefix,
        S3_ENDPOINT: s3.endpoint,
        S3_REGION: s3.region,
        ...awsEnv(s3),
      };
      const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup'], { env });
      expect(r.code).toBe(ExitCode.prerequisite);
      expectOneError(r, new RegExp(`not enough free space in ${small} to download ${name}: .* needed, .* free`));
      expect(fs.readdirSync(small).filter((f) => f !== '.lock')).toEqual([]);
    } finally {
      sh(['umount', small]);
    }
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it('dry-run prints the commands and changes nothing', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const name = `${PROJECT}_backup_2026-04-09_00-00-00`;
    await makeArchive(path.join(root, 'backup'), name, pagilaDump, addonsSrc, db.name);
    const r = await restoreRun(root, db, ['restore', name, '--yes', '--no-safety-backup', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/pg_restore .*--exit-on-error/);
    expect(r.stderr).toMatch(/ALTER DATABASE/);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    expect(await leftovers(db.name)).toEqual([]);
    expect(fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8')).toContain('current');
  });
});
