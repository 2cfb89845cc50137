// SQL migrations (the sqlMigrations kind) and seeds of the web-api example, in URL mode against a real throwaway PostgreSQL 15:
// order, one transaction per file, the schema_migrations record, skipping applied files, refusing changed ones.
import { afterAll, describe, expect, inject, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main, serviceTasks, ExitCode } from '../../scripts/index.ts';
import { config, tasks } from '../../examples/web-api/tasks.ts';
import { adminQuery, createTestDatabaseInfo, repoRoot, tableFingerprint, type TestDatabase } from '../harness/pg.ts';
import { expectOneError } from '../harness/expect.ts';
import { sink } from '../harness/sink.ts';

const pg = inject('pg');
const example = path.join(repoRoot, 'examples/web-api');

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** A copy of the example's folder (template, migrations, seeds) with a .env, to change files in. */
function exampleCopy(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-webapi-'));
  roots.push(root);
  for (const f of ['.env.template', 'migrations', 'seeds']) fs.cpSync(path.join(example, f), path.join(root, f), { recursive: true });
  fs.writeFileSync(path.join(root, '.env'), 'POSTGRES_PASSWORD=unused-in-url-mode\n', { mode: 0o600 });
  return root;
}

/** The example's CLI in-process (its tasks and config), URL mode, no terminal. */
async function tasksRun(root: string, d: TestDatabase, argv: string[], env: Record<string, string> = {}) {
  const stdout = sink();
  const stderr = sink();
  const code = await main({
    argv,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', DATABASE_URL: d.url, ...env },
    root,
    tasks,
    serviceTasks,
    config,
    stdout,
    stderr,
    stdinIsTTY: false,
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const records = (d: TestDatabase) =>
  adminQuery(
    pg,
    d.name,
    "SELECT version, name, checksum, applied_at IS NOT NULL, to_char(applied_at, 'HH24:MI:SS.US') FROM schema_migrations ORDER BY 1",
  );

describe('migrate with sqlMigrations (the web-api example)', () => {
  it('applies migrations/NNN_name.sql in order on a fresh database and records each (version, name, checksum, applied_at)', async () => {
    const d = await createTestDatabaseInfo(pg, 'mig_fresh');
    const root = exampleCopy();
    const r = await tasksRun(root, d, ['migrate']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/applying migrations\/001_create_users\.sql[\s\S]*applying migrations\/002_create_posts\.sql/);
    expect(r.stderr).toContain('applied 2 migrations');
    const rows = (await records(d)).split('\n').map((l) => l.split('|').slice(0, 4));
    expect(rows).toEqual([
      ['1', 'create_users', sha256(path.join(root, 'migrations/001_create_users.sql')), 't'],
      ['2', 'create_posts', sha256(path.join(root, 'migrations/002_create_posts.sql')), 't'],
    ]);
    // The tables belong to the app user (the migrations ran as it), with the foreign key of 002 onto 001's table.
    expect(await adminQuery(pg, d.name, "SELECT tableowner FROM pg_tables WHERE tablename = 'posts'")).toBe(d.user);
    expect(await adminQuery(pg, d.name, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'posts'::regclass AND contype = 'f'")).toBe(
      '1',
    );
  });

  it('a second migrate applies nothing; a new file is the only one applied next time', async () => {
    const d = await createTestDatabaseInfo(pg, 'mig_again');
    const root = exampleCopy();
    expect((await tasksRun(root, d, ['migrate'])).code).toBe(0);
    const first = await records(d);
    const again = await tasksRun(root, d, ['migrate']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('up to date: 2 migrations applied, nothing to do');
    expect(again.stderr).not.toContain('applying');
    expect(await records(d)).toBe(first);

    fs.writeFileSync(path.join(root, 'migrations/003_add_bio.sql'), 'ALTER TABLE users ADD COLUMN bio text;\n');
    const third = await tasksRun(root, d, ['migrate']);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stderr.match(/applying /g)).toHaveLength(1);
    expect(third.stderr).toContain('applying migrations/003_add_bio.sql');
    expect((await records(d)).split('\n')).toHaveLength(3);
    expect((await records(d)).startsWith(first)).toBe(true);
  });

  it('refuses (exit 3) when an applied file changed, and applies nothing else either', async () => {
    const d = await createTestDatabaseInfo(pg, 'mig_changed');
    const root = exampleCopy();
    expect((await tasksRun(root, d, ['migrate'])).code).toBe(0);
    const before = await records(d);
    fs.appendFileSync(path.join(root, 'migrations/001_create_users.sql'), 'ALTER TABLE users ADD COLUMN age int;\n');
    fs.writeFileSync(path.join(root, 'migrations/003_later.sql'), 'CREATE TABLE later (id int);\n');
    const r = await tasksRun(root, d, ['migrate']);
    expect(r.code).toBe(ExitCode.refused);
    expectOneError(r, /migrations\/001_create_users\.sql was changed after it was applied .*nothing was applied/);
    expect(await records(d)).toBe(before);
    expect(await adminQuery(pg, d.name, "SELECT to_regclass('later') IS NULL")).toBe('t');
  });

  it('a failing migration is rolled back with its record; the ones before it stay applied', async () => {
    const d = await createTestDatabaseInfo(pg, 'mig_fail');
    const root = exampleCopy();
    fs.writeFileSync(
      path.join(root, 'migrations/003_broken.sql'),
      'CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\nALTER TABLE nowhere ADD COLUMN x int;\n',
    );
    const r = await tasksRun(root, d, ['migrate']);
    expect(r.code).not.toBe(0);
    expectOneError(r, /migration migrations\/003_broken\.sql failed \(rolled back, not recorded\): .*relation "nowhere" does not exist/);
    expect((await records(d)).split('\n').map((l) => l.split('|')[0])).toEqual(['1', '2']);
    expect(await adminQuery(pg, d.name, "SELECT to_regclass('half_done') IS NULL")).toBe('t');
    // Fixed, it is applied on the next run.
    fs.writeFileSync(path.join(root, 'migrations/003_broken.sql'), 'CREATE TABLE half_done (id int);\n');
    const fixed = await tasksRun(root, d, ['migrate']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect((await records(d)).split('\n')).toHaveLength(3);
  });

  it('refuses a file not named NNN_name.sql, and a new file numbered below the newest applied one', async () => {
    const d = await createTestDatabaseInfo(pg, 'mig_names');
    const root = exampleCopy();
    fs.writeFileSync(path.join(root, 'migrations/add_things.sql'), 'SELECT 1;\n');
    const bad = await tasksRun(root, d, ['migrate']);
    expect(bad.code).toBe(ExitCode.failure);
    expectOneError(bad, /migrations\/add_things\.sql is not named like a migration \(NNN_name\.sql\)/);
    expect(await adminQuery(pg, d.name, "SELECT to_regclass('users') IS NULL")).toBe('t');
    fs.rmSync(path.join(root, 'migrations/add_things.sql'));
    fs.renameSync(path.join(root, 'migrations/002_create_posts.sql'), path.join(root, 'migrations/005_create_posts.sql'));
    expect((await tasksRun(root, d, ['migrate'])).code).toBe(0);
    fs.writeFileSync(path.join(root, 'migrations/003_between.sql'), 'CREATE TABLE between_them (id int);\n');
    const early = await tasksRun(root, d, ['migrate']);
    expect(early.code).toBe(ExitCode.refused);
    expectOneError(early, /003_between\.sql is older than the newest applied migration \(5\)/);
  });

  it('--dry-run prints the psql commands and changes nothing (not even the table)', async () => {
    const d = await createTestDatabaseInfo(pg, 'mig_dry');
    const root = exampleCopy();
    const r = await tasksRun(root, d, ['migrate', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/psql .*--single-transaction/);
    expect(r.stderr).toContain('CREATE TABLE IF NOT EXISTS schema_migrations');
    expect(r.stderr).not.toContain(d.password);
    expect(await adminQuery(pg, d.name, "SELECT to_regclass('schema_migrations') IS NULL")).toBe('t');
  });
});

describe('seed and reset-db of the web-api example', () => {
  it('seed loads the fixtures on development and staging, again without duplicates; production refuses it', async () => {
    const d = await createTestDatabaseInfo(pg, 'seed_envs');
    const root = exampleCopy();
    expect((await tasksRun(root, d, ['migrate'])).code).toBe(0);
    const prod = await tasksRun(root, d, ['seed'], { APP_ENV: 'production' });
    expect(prod.code).toBe(ExitCode.refused);
    expectOneError(prod, /seed refuses to run in production/);
    expect(await adminQuery(pg, d.name, 'SELECT count(*) FROM users')).toBe('0');
    for (const APP_ENV of ['development', 'staging']) {
      const r = await tasksRun(root, d, ['seed'], { APP_ENV });
      expect(r.code, r.stderr).toBe(0);
      expect(await adminQuery(pg, d.name, 'SELECT count(*) FROM users')).toBe('2');
      expect(await adminQuery(pg, d.name, 'SELECT count(*) FROM posts')).toBe('2');
    }
  });

  it('reset-db empties the database, runs every migration again, then seeds', async () => {
    const d = await createTestDatabaseInfo(pg, 'seed_reset');
    const root = exampleCopy();
    expect((await tasksRun(root, d, ['migrate'])).code).toBe(0);
    await adminQuery(pg, d.name, 'SET ROLE ' + JSON.stringify(d.user) + '; CREATE TABLE stray (id int)');
    const r = await tasksRun(root, d, ['reset-db', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(await tableFingerprint(pg, d.name)).sort()).toEqual(['public.posts', 'public.schema_migrations', 'public.users']);
    expect((await records(d)).split('\n')).toHaveLength(2);
    expect(await adminQuery(pg, d.name, 'SELECT count(*) FROM users')).toBe('2');
  });
});
