// Database tasks in URL mode against a real throwaway PostgreSQL 15: pagila round trips, every bad input, guards, versions, secrets.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { main } from '../../scripts/core/cli.ts';
import { config, tasks } from '../../tasks.ts';
import { serviceTasks } from '../../scripts/tasks/stack.ts';
import { ExitCode } from '../../scripts/core/errors.ts';
import {
  adminQuery,
  createTestDatabaseInfo,
  databaseExists,
  freePort,
  loadPagila,
  repoRoot,
  tableFingerprint,
  type TestDatabase,
} from '../harness/pg.ts';
import { expectOneError } from '../harness/expect.ts';
import { sink } from '../harness/sink.ts';

const pg = inject('pg');
const testConfig = { ...config, migrate: undefined, seedCommand: undefined, seedsDir: 'seeds' };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  root: string;
}

const roots: string[] = [];
function makeRoot(files: Record<string, string> = {}): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-db-'));
  roots.push(root);
  fs.copyFileSync(path.join(repoRoot, '.env.template'), path.join(root, '.env.template'));
  fs.writeFileSync(path.join(root, '.env'), 'POSTGRES_PASSWORD=unused-in-url-mode\n', { mode: 0o600 });
  fs.mkdirSync(path.join(root, 'seeds'));
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), text);
  }
  return root;
}

/** The real CLI in-process, URL mode, no terminal. */
async function tasksRun(
  argv: string[],
  o: { url?: string; env?: Record<string, string>; root?: string; signal?: AbortSignal } = {},
): Promise<Run> {
  const root = o.root ?? makeRoot();
  const stdout = sink();
  const stderr = sink();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    ...(o.url ? { DATABASE_URL: o.url } : {}),
    ...o.env,
  };
  const code = await main({
    argv,
    env,
    root,
    tasks,
    serviceTasks,
    config: testConfig,
    stdout,
    stderr,
    stdinIsTTY: false,
    signal: o.signal,
  });
  return { code, stdout: stdout.text, stderr: stderr.text, root };
}

/** Databases left over from an import (temp copies named <db>_import_<pid> / <db>_old_<pid>). */
async function leftovers(db: string): Promise<string[]> {
  const out = await adminQuery(pg, 'postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${db}\\_%' ORDER BY 1`);
  return out.split('\n').filter(Boolean);
}

/** A small database with known content, to prove a failed operation left it alone. */
async function smallDatabase(prefix: string): Promise<TestDatabase> {
  const d = await createTestDatabaseInfo(pg, prefix);
  await adminQuery(
    pg,
    d.name,
    `SET ROLE ${d.user}; CREATE TABLE keep (id int primary key, note text); ` +
      "INSERT INTO keep SELECT g, 'row ' || g FROM generate_series(1, 250) g",
  );
  return d;
}

/** Fake client tools first on PATH (fault injection only). */
function fakeBin(scripts: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-fakebin-'));
  roots.push(dir);
  for (const [name, body] of Object.entries(scripts)) fs.writeFileSync(path.join(dir, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  return dir;
}

let src: TestDatabase;
let srcPrint: Awaited<ReturnType<typeof tableFingerprint>>;
let customDump: string;

beforeAll(async () => {
  src = await createTestDatabaseInfo(pg, 'pagila_src');
  await loadPagila(pg, src.name);
  srcPrint = await tableFingerprint(pg, src.name);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-dumps-'));
  roots.push(dir);
  customDump = path.join(dir, 'pagila.dump');
  const r = await tasksRun(['db-export', customDump], { url: src.url });
  if (r.code !== 0) throw new Error(`setup export failed: ${r.stderr}`);
});

afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

describe('db-export and db-import round trips (pagila)', () => {
  it('custom format: every table has the same rows and content after import into another database, owned by its app user', async () => {
    expect(Object.keys(srcPrint).length).toBeGreaterThan(15);
    expect(srcPrint['public.rental']!.rows).toBe(16044);
    expect(fs.readFileSync(customDump).subarray(0, 5).toString()).toBe('PGDMP');
    expect(fs.statSync(customDump).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(path.dirname(customDump))).toEqual(['pagila.dump']);

    const dst = await smallDatabase('pagila_dst');
    const r = await tasksRun(['db-import', customDump, '--yes'], { url: dst.url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/imported .*pagila\.dump into pagila_dst_/);
    expect(await tableFingerprint(pg, dst.name)).toEqual(srcPrint);
    const foreign = await adminQuery(
      pg,
      dst.name,
      'SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ' +
        "WHERE n.nspname IN ('public','legacy') AND c.relkind IN ('r','p','v','S') " +
        `AND pg_get_userbyid(c.relowner) <> '${dst.user}'`,
    );
    expect(foreign).toBe('0');
    expect(await leftovers(dst.name)).toEqual([]);
  });

  it('a dump whose owner role does not exist on the target: restored, every object owned by the app user', async () => {
    const gone = await createTestDatabaseInfo(pg, 'gone');
    await adminQuery(
      pg,
      gone.name,
      `SET ROLE ${gone.user}; CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1), (2); ` +
        'CREATE VIEW v AS SELECT * FROM t; CREATE SEQUENCE s; GRANT SELECT ON t TO PUBLIC',
    );
    const root = makeRoot();
    const e = await tasksRun(['db-export', 'gone.dump'], { url: gone.url, root });
    expect(e.code, e.stderr).toBe(0);
    await adminQuery(pg, 'postgres', `DROP DATABASE ${gone.name}`);
    await adminQuery(pg, 'postgres', `DROP ROLE ${gone.user}`);
    const dst = await smallDatabase('orphan');
    const i = await tasksRun(['db-import', 'gone.dump', '--yes'], { url: dst.url, root });
    expect(i.code, i.stderr).toBe(0);
    expect(await adminQuery(pg, dst.name, 'SELECT count(*) FROM v')).toBe('2');
    const owners = await adminQuery(
      pg,
      dst.name,
      "SELECT string_agg(DISTINCT pg_get_userbyid(c.relowner), ',') " +
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
    );
    expect(owners).toBe(dst.user);
  });

  it('prints the size and time of an export and writes it 0600 under backup/ by default', async () => {
    const root = makeRoot();
    const r = await tasksRun(['db-export'], { url: src.url, root });
    expect(r.code, r.stderr).toBe(0);
    const files = fs.readdirSync(path.join(root, 'backup'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(new RegExp(`^${src.name}_\\d{4}-\\d\\d-\\d\\d_\\d\\d-\\d\\d-\\d\\d\\.dump$`));
    expect(fs.statSync(path.join(root, 'backup', files[0]!)).mode & 0o777).toBe(0o600);
    expect(r.stderr).toMatch(/exported .* \d+(\.\d)? (KB|MB) in [\d.]+ (ms|s)/);
    expect(r.stdout.trim()).toBe(path.join(root, 'backup', files[0]!));
  });

  for (const ext of ['sql', 'sql.gz']) {
    it(`plain .${ext}: exports by extension and imports back with equal content`, async () => {
      const root = makeRoot();
      const out = path.join(root, `pagila.${ext}`);
      const e = await tasksRun(['db-export', out], { url: src.url, root });
      expect(e.code, e.stderr).toBe(0);
      const head = fs.readFileSync(out).subarray(0, 2);
      if (ext === 'sql.gz') expect([head[0], head[1]]).toEqual([0x1f, 0x8b]);
      else expect(fs.readFileSync(out, 'utf8')).toMatch(/-- PostgreSQL database dump complete/);
      const dst = await smallDatabase('plain_dst');
      const i = await tasksRun(['db-import', out, '--yes'], { url: dst.url, root });
      expect(i.code, i.stderr).toBe(0);
      expect(await tableFingerprint(pg, dst.name)).toEqual(srcPrint);
    });
  }

  it("export checks the archive's table of contents before publishing it; --verify also reads every data block", async () => {
    const root = makeRoot();
    const quick = await tasksRun(['db-export', 'b.dump'], { url: src.url, root });
    expect(quick.code, quick.stderr).toBe(0);
    expect(quick.stderr).not.toMatch(/pg_restore --file \/dev\/null/);
    expect(fs.readFileSync(path.join(root, 'b.dump')).subarray(0, 5).toString()).toBe('PGDMP');
    const full = await tasksRun(['db-export', 'a.dump', '--verify'], { url: src.url, root });
    expect(full.code, full.stderr).toBe(0);
    expect(full.stderr).toMatch(/\$ (\S*\/)?pg_restore --file \/dev\/null \S+a\.dump\.tmp-\d+/);
  });

  it('refuses to overwrite an existing export file without --force', async () => {
    const root = makeRoot({ 'x.dump': 'precious' });
    const r = await tasksRun(['db-export', 'x.dump'], { url: src.url, root });
    expect(r.code).toBe(ExitCode.usage);
    expectOneError(r, /x\.dump already exists/);
    expect(fs.readFileSync(path.join(root, 'x.dump'), 'utf8')).toBe('precious');
  });
});

describe('db-import bad input leaves the database as it was', () => {
  let target: TestDatabase;
  let before: Awaited<ReturnType<typeof tableFingerprint>>;
  beforeAll(async () => {
    target = await smallDatabase('victim');
    before = await tableFingerprint(pg, target.name);
  });
  const unchanged = async () => {
    expect(await tableFingerprint(pg, target.name)).toEqual(before);
    expect(await leftovers(target.name)).toEqual([]);
  };

  it('missing file', async () => {
    const r = await tasksRun(['db-import', 'nope.dump', '--yes'], { url: target.url });
    expect(r.code).toBe(ExitCode.usage);
    expectOneError(r, /nope\.dump: no such file/);
    await unchanged();
  });

  it('unreadable file (a directory)', async () => {
    const root = makeRoot({ 'dumps/keep.txt': 'x' });
    const r = await tasksRun(['db-import', 'dumps', '--yes'], { url: target.url, root });
    expect(r.code).toBe(ExitCode.usage);
    expectOneError(r, /dumps is a directory/);
    await unchanged();
  });

  it('empty file', async () => {
    const root = makeRoot({ 'empty.dump': '' });
    const r = await tasksRun(['db-import', 'empty.dump', '--yes'], { url: target.url, root });
    expect(r.code).not.toBe(0);
    expectOneError(r, /empty\.dump is empty/);
    await unchanged();
  });

  it('corrupt file (not a dump at all)', async () => {
    const root = makeRoot();
    fs.writeFileSync(path.join(root, 'junk.dump'), Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 0, 9, 8, 7]));
    const r = await tasksRun(['db-import', 'junk.dump', '--yes'], { url: target.url, root });
    expect(r.code).not.toBe(0);
    expectOneError(r, /junk\.dump is not a PostgreSQL dump/);
    await unchanged();
  });

  it('corrupt custom archive (valid header, garbage after it)', async () => {
    const root = makeRoot();
    const buf = fs.readFileSync(customDump);
    const bad = Buffer.concat([buf.subarray(0, 5), Buffer.alloc(4096, 0x5a)]);
    fs.writeFileSync(path.join(root, 'bad.dump'), bad);
    const r = await tasksRun(['db-import', 'bad.dump', '--yes'], { url: target.url, root });
    expect(r.code).not.toBe(0);
    expectOneError(r, /bad\.dump is corrupt or truncated/);
    await unchanged();
  });

  it('truncated custom dump (its table of contents is intact, the data is cut)', async () => {
    const root = makeRoot();
    const buf = fs.readFileSync(customDump);
    fs.writeFileSync(path.join(root, 'half.dump'), buf.subarray(0, Math.floor(buf.length * 0.6)));
    const r = await tasksRun(['db-import', 'half.dump', '--yes'], { url: target.url, root });
    expect(r.code).not.toBe(0);
    expectOneError(r, /half\.dump is truncated or corrupt/);
    expect(r.stderr).toMatch(/was not changed/);
    await unchanged();
  });

  it('truncated .sql.gz', async () => {
    const root = makeRoot();
    const e = await tasksRun(['db-export', 'full.sql.gz'], { url: src.url, root });
    expect(e.code, e.stderr).toBe(0);
    const buf = fs.readFileSync(path.join(root, 'full.sql.gz'));
    fs.writeFileSync(path.join(root, 'cut.sql.gz'), buf.subarray(0, Math.floor(buf.length / 2)));
    const r = await tasksRun(['db-import', 'cut.sql.gz', '--yes'], { url: target.url, root });
    expect(r.code).not.toBe(0);
    expectOneError(r, /cut\.sql\.gz is truncated or corrupt/);
    await unchanged();
  });

  it('a plain .sql that fails midway (stops at the first error, nothing applied)', async () => {
    const root = makeRoot({
      'bad.sql':
        'CREATE TABLE keep (id int);\nCREATE TABLE other (id int);\nINSERT INTO other VALUES (1);\n' +
        'SELECT 1/0;\nCREATE TABLE never (id int);\n',
    });
    const r = await tasksRun(['db-import', 'bad.sql', '--yes'], { url: target.url, root });
    expect(r.code).not.toBe(0);
    expectOneError(r, /restoring bad\.sql failed: .*division by zero/);
    await unchanged();
  });

  it('unreachable server (closed port)', async () => {
    const port = await freePort();
    const r = await tasksRun(['db-import', customDump, '--yes'], {
      url: `postgres://${target.user}:${target.password}@127.0.0.1:${port}/${target.name}`,
    });
    expect(r.code).toBe(ExitCode.prerequisite);
    expectOneError(r, new RegExp(`cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port} as ${target.user}: connection refused`));
    await unchanged();
  });

  it('wrong password', async () => {
    const r = await tasksRun(['db-import', customDump, '--yes'], {
      url: `postgres://${target.user}:wrong-password@127.0.0.1:${pg.port}/${target.name}`,
    });
    expect(r.code).toBe(ExitCode.prerequisite);
    expectOneError(r, /password authentication failed/);
    expect(r.stderr).not.toContain('wrong-password');
    await unchanged();
  });

  it('no terminal and no --yes: refused before anything changes', async () => {
    const r = await tasksRun(['db-import', customDump], { url: target.url });
    expect(r.code).toBe(ExitCode.refused);
    expectOneError(r, /refused, no terminal/);
    await unchanged();
  });

  it('database in use by a session the app user cannot end: refused, previous database kept', async () => {
    const holder = spawn(
      path.join(pg.binDir, 'psql'),
      ['-X', '-h', pg.dir, '-p', String(pg.port), '-U', pg.superuser, '-d', target.name, '-c', 'SELECT pg_sleep(60)'],
      { stdio: 'ignore' },
    );
    try {
      for (let i = 0; i < 50; i++) {
        if (
          (await adminQuery(
            pg,
            'postgres',
            `SELECT count(*) FROM pg_stat_activity WHERE datname = '${target.name}' AND query LIKE '%pg_sleep%'`,
          )) === '1'
        )
          break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const r = await tasksRun(['db-import', customDump, '--yes'], { url: target.url });
      expect(r.code).toBe(ExitCode.refused);
      expectOneError(r, new RegExp(`database ${target.name} is in use`));
      await unchanged();
      const reset = await tasksRun(['reset-db', '--yes'], { url: target.url });
      expect(reset.code).toBe(ExitCode.refused);
      expectOneError(reset, new RegExp(`database ${target.name} is in use`));
      await unchanged();
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('Ctrl-C during the restore: exit 130, the half-restored copy is dropped, the database is as it was', async () => {
    const controller = new AbortController();
    const running = tasksRun(['db-import', customDump, '--yes'], { url: target.url, signal: controller.signal });
    for (let i = 0; i < 200 && (await leftovers(target.name)).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(await leftovers(target.name)).toHaveLength(1);
    controller.abort('SIGINT');
    const r = await running;
    expect(r.code).toBe(ExitCode.sigint);
    expectOneError(r, /interrupted \(SIGINT\)/);
    await unchanged();
  });

  it('a dump from a newer PostgreSQL major than the server: refused with both versions named', async () => {
    const root = makeRoot();
    const buf = fs.readFileSync(customDump);
    const server = await adminQuery(pg, 'postgres', 'SHOW server_version');
    const from = Buffer.from(server);
    const at = buf.indexOf(from);
    expect(at).toBeGreaterThan(0);
    const patched = Buffer.from(buf);
    Buffer.from('99' + server.slice(2)).copy(patched, at);
    fs.writeFileSync(path.join(root, 'future.dump'), patched);
    const r = await tasksRun(['db-import', 'future.dump', '--yes'], { url: target.url, root });
    expect(r.code).toBe(ExitCode.prerequisite);
    expectOneError(r, /dumped from PostgreSQL 99\.\d+, newer than the target server PostgreSQL 15\.\d+/);
    await unchanged();

    fs.writeFileSync(
      path.join(root, 'future.sql'),
      '--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 99.1\n-- Dumped by pg_dump version 99.1\n\n' +
        'CREATE TABLE t (id int);\n',
    );
    const p = await tasksRun(['db-import', 'future.sql', '--yes'], { url: target.url, root });
    expect(p.code).toBe(ExitCode.prerequisite);
    expectOneError(p, /PostgreSQL 99\.1, newer than the target server PostgreSQL 15/);
    await unchanged();
  });
});

describe('db-export failures never leave a file under the final name', () => {
  it('a pg_dump older than the server is refused naming both versions, and nothing is written', async () => {
    // Like a real pg_dump 12 facing a newer server: it aborts by itself; the refusal names both versions.
    const bin = fakeBin({
      pg_dump:
        'if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 12.9"; exit 0; fi\n' +
        'echo "pg_dump: error: aborting because of server version mismatch" >&2; exit 1',
    });
    const root = makeRoot();
    const r = await tasksRun(['db-export', 'x.dump'], { url: src.url, root, env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code).toBe(ExitCode.prerequisite);
    expectOneError(r, /pg_dump 12\.9 is older than the PostgreSQL 15\.\d+ server/);
    expect(fs.readdirSync(root).filter((f) => f.includes('x.dump'))).toEqual([]);
  });

  it('pg_dump writes half its output then fails: non-zero, nothing under the final name, no temp file', async () => {
    const bin = fakeBin({
      pg_dump:
        'if [ "$1" = --version ]; then exec /usr/bin/pg_dump --version; fi\n' +
        '/usr/bin/pg_dump "$@" | head -c 20000\necho "pg_dump: error: connection lost" >&2\nexit 1',
    });
    const root = makeRoot();
    const r = await tasksRun(['db-export', 'x.dump'], { url: src.url, root, env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code).toBe(1);
    expectOneError(r, /pg_dump exited with code 1: .*connection lost/);
    expect(fs.readdirSync(root).filter((f) => f.startsWith('x.dump'))).toEqual([]);
  });

  it('pg_dump exits 0 but its output is truncated: caught, nothing under the final name', async () => {
    const bin = fakeBin({
      pg_dump: 'if [ "$1" = --version ]; then exec /usr/bin/pg_dump --version; fi\n/usr/bin/pg_dump "$@" | head -c 20000\nexit 0',
    });
    const root = makeRoot();
    const r = await tasksRun(['db-export', 'x.dump'], { url: src.url, root, env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code).not.toBe(0);
    expectOneError(r, /corrupt or truncated/);
    expect(fs.readdirSync(root).filter((f) => f.startsWith('x.dump'))).toEqual([]);
    const sql = await tasksRun(['db-export', 'x.sql'], { url: src.url, root, env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(sql.code).not.toBe(0);
    expectOneError(sql, /truncated/);
    expect(fs.readdirSync(root).filter((f) => f.startsWith('x.sql'))).toEqual([]);
  });

  it('pg_dump exits 0 with its table of contents whole but the data cut short: caught by default (the last block is read)', async () => {
    const bin = fakeBin({
      pg_dump:
        'if [ "$1" = --version ]; then exec /usr/bin/pg_dump --version; fi\nt=$(mktemp)\n/usr/bin/pg_dump "$@" > "$t" || exit 1\n' +
        'head -c $(( $(stat -c %s "$t") - 300 )) "$t"\nrm -f "$t"\nexit 0',
    });
    const root = makeRoot();
    const r = await tasksRun(['db-export', 'x.dump'], { url: src.url, root, env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code).not.toBe(0);
    expectOneError(r, /corrupt or truncated/);
    expect(fs.readdirSync(root).filter((f) => f.startsWith('x.dump'))).toEqual([]);
  });

  it('pg_dump exits 0 with no output: caught', async () => {
    const bin = fakeBin({ pg_dump: 'if [ "$1" = --version ]; then exec /usr/bin/pg_dump --version; fi\nexit 0' });
    const root = makeRoot();
    const r = await tasksRun(['db-export', 'x.dump'], { url: src.url, root, env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code).not.toBe(0);
    expectOneError(r, /wrote nothing/);
    expect(fs.readdirSync(root).filter((f) => f.startsWith('x.dump'))).toEqual([]);
  });
});

describe('secrets', () => {
  it('the password is in neither the printed command (--dry-run) nor any client process command line', async () => {
    const dry = await tasksRun(['--dry-run', 'db-export', 'x.dump'], { url: src.url });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toMatch(/\[dry-run\] \$ (\S*\/)?pg_dump .*--dbname pagila_src_/);
    expect(dry.stderr).not.toContain(src.password);

    // A wrapper records what `ps` and /proc/<pid>/cmdline show for each client, then runs the real one.
    const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ct-argv-')), 'argv.log');
    roots.push(path.dirname(log));
    const wrap = (tool: string) =>
      `tr '\\0' ' ' < /proc/$$/cmdline >> ${log}; echo >> ${log}; ` +
      `[ -n "$PGPASSWORD" ] && echo "env:PGPASSWORD" >> ${log}; exec /usr/bin/${tool} "$@"`;
    const bin = fakeBin({ pg_dump: wrap('pg_dump'), pg_restore: wrap('pg_restore'), psql: wrap('psql') });
    const env = { PATH: `${bin}:${process.env.PATH}` };
    const root = makeRoot();
    const e = await tasksRun(['db-export', 'x.dump'], { url: src.url, root, env });
    expect(e.code, e.stderr).toBe(0);
    const dst = await smallDatabase('secret_dst');
    const i = await tasksRun(['db-import', 'x.dump', '--yes'], { url: dst.url, root, env });
    expect(i.code, i.stderr).toBe(0);
    const seen = fs.readFileSync(log, 'utf8');
    expect(seen).toMatch(/pg_dump --host 127\.0\.0\.1 .*--username app_pagila_src/);
    expect(seen).toMatch(/pg_restore --host 127\.0\.0\.1 .*--no-owner --no-acl --role=app_secret_dst/);
    expect(seen).toContain('env:PGPASSWORD');
    expect(seen).not.toContain(src.password);
    expect(seen).not.toContain(dst.password);
    expect(e.stderr + i.stderr).not.toContain(src.password);
    expect(i.stderr).not.toContain(dst.password);
  });
});

describe('reset-db, seed and psql', () => {
  const seeds = {
    'seeds/01_people.sql':
      'CREATE TABLE IF NOT EXISTS people (name text primary key);\n' +
      "INSERT INTO people SELECT n FROM unnest(ARRAY['ada','linus']) n WHERE NOT EXISTS (SELECT 1 FROM people p WHERE p.name = n);\n",
    'seeds/02_pets.sql':
      'CREATE TABLE IF NOT EXISTS pets (name text primary key, owner text references people(name));\n' +
      "INSERT INTO pets VALUES ('rex', 'ada') ON CONFLICT DO NOTHING;\n",
  };

  it('reset-db drops everything, recreates the database owned by the app user, then seeds', async () => {
    const d = await smallDatabase('reset');
    const root = makeRoot(seeds);
    const r = await tasksRun(['reset-db', '--yes'], { url: d.url, root });
    expect(r.code, r.stderr).toBe(0);
    const print = await tableFingerprint(pg, d.name);
    expect(Object.keys(print).sort()).toEqual(['public.people', 'public.pets']);
    expect(print['public.people']!.rows).toBe(2);
    expect(await adminQuery(pg, 'postgres', `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${d.name}'`)).toBe(d.user);
    // Seeding again adds no duplicates.
    const again = await tasksRun(['seed'], { url: d.url, root });
    expect(again.code, again.stderr).toBe(0);
    expect(await tableFingerprint(pg, d.name)).toEqual(print);
  });

  it("reset-db and db-import end the app's own open sessions first instead of failing", async () => {
    const d = await smallDatabase('busy');
    const root = makeRoot(seeds);
    const open = () =>
      spawn(
        path.join(pg.binDir, 'psql'),
        ['-X', '-h', pg.host, '-p', String(pg.port), '-U', d.user, '-d', d.name, '-c', 'SELECT pg_sleep(60)'],
        { stdio: 'ignore', env: { ...process.env, PGPASSWORD: d.password } },
      );
    const waitOpen = async () => {
      for (let i = 0; i < 100; i++) {
        if (
          (await adminQuery(
            pg,
            'postgres',
            `SELECT count(*) FROM pg_stat_activity WHERE datname = '${d.name}' AND query LIKE '%pg_sleep%'`,
          )) === '1'
        )
          return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('the session did not open');
    };
    const a = open();
    try {
      await waitOpen();
      const r = await tasksRun(['reset-db', '--yes'], { url: d.url, root });
      expect(r.code, r.stderr).toBe(0);
      expect(Object.keys(await tableFingerprint(pg, d.name)).sort()).toEqual(['public.people', 'public.pets']);
    } finally {
      a.kill('SIGKILL');
    }
    const b = open();
    try {
      await waitOpen();
      const i = await tasksRun(['db-import', customDump, '--yes'], { url: d.url, root });
      expect(i.code, i.stderr).toBe(0);
      expect(await tableFingerprint(pg, d.name)).toEqual(srcPrint);
    } finally {
      b.kill('SIGKILL');
    }
  });

  it('a failing seed file is rolled back as a whole and stops the run', async () => {
    const d = await smallDatabase('seedfail');
    const before = await tableFingerprint(pg, d.name);
    const root = makeRoot({
      'seeds/01_ok.sql': 'CREATE TABLE half (id int); INSERT INTO half VALUES (1);\nINSERT INTO nowhere VALUES (1);\n',
      'seeds/02_never.sql': 'CREATE TABLE never (id int);\n',
    });
    const r = await tasksRun(['seed'], { url: d.url, root });
    expect(r.code).not.toBe(0);
    expectOneError(r, /seed 01_ok\.sql failed \(rolled back\): line 2: relation "nowhere" does not exist/);
    expect(await tableFingerprint(pg, d.name)).toEqual(before);
  });

  it('.sql.gz seeds load too, in name order', async () => {
    const d = await smallDatabase('seedgz');
    const root = makeRoot({ 'seeds/01_a.sql': 'CREATE TABLE ordered (n int);\n' });
    const zlib = await import('node:zlib');
    fs.writeFileSync(path.join(root, 'seeds/02_b.sql.gz'), zlib.gzipSync('INSERT INTO ordered VALUES (2);\n'));
    const r = await tasksRun(['seed'], { url: d.url, root });
    expect(r.code, r.stderr).toBe(0);
    expect(await adminQuery(pg, d.name, 'SELECT n FROM ordered')).toBe('2');
  });

  it('production: reset-db and seed are refused without --force, and --yes alone is not enough', async () => {
    const d = await smallDatabase('prod');
    const before = await tableFingerprint(pg, d.name);
    const root = makeRoot(seeds);
    const env = { APP_ENV: 'production' };
    for (const argv of [['reset-db'], ['reset-db', '--yes'], ['seed'], ['db-import', customDump, '--yes']]) {
      const r = await tasksRun(argv, { url: d.url, root, env });
      expect(r.code, argv.join(' ')).toBe(ExitCode.refused);
      expectOneError(r, /refuses to run in production/);
    }
    // --force without --yes and without a terminal: still refused (the name cannot be typed).
    const f = await tasksRun(['reset-db', '--force'], { url: d.url, root, env });
    expect(f.code).toBe(ExitCode.refused);
    expect(await tableFingerprint(pg, d.name)).toEqual(before);
    const ok = await tasksRun(['reset-db', '--yes', '--force'], { url: d.url, root, env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(Object.keys(await tableFingerprint(pg, d.name)).sort()).toEqual(['public.people', 'public.pets']);
  });

  it('reset-db without a terminal and without --yes is refused (exit 3), nothing touched', async () => {
    const d = await smallDatabase('notty');
    const before = await tableFingerprint(pg, d.name);
    const r = await tasksRun(['reset-db'], { url: d.url });
    expect(r.code).toBe(ExitCode.refused);
    expectOneError(r, /refused, no terminal/);
    expect(await tableFingerprint(pg, d.name)).toEqual(before);
    expect(await databaseExists(pg, d.name)).toBe(true);
  });

  it('psql passes arguments after -- to psql', async () => {
    const d = await smallDatabase('psql');
    const r = await tasksRun(['psql', '--', '-c', 'CREATE TABLE made_by_psql (id int)'], { url: d.url });
    expect(r.code, r.stderr).toBe(0);
    expect(await adminQuery(pg, d.name, `SELECT count(*) FROM pg_tables WHERE tablename = 'made_by_psql'`)).toBe('1');
  });
});
