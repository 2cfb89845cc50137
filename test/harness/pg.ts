// A throwaway PostgreSQL cluster (initdb + pg_ctl in a temp dir) shared by the whole test run, plus helpers for tests.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PgInfo } from './services.ts';

const BIN_DIR = '/usr/lib/postgresql/15/bin';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** The repository root (this file is test/harness/pg.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The shared pagila dataset, beside the clone (../shared/datasets/pagila), or where PAGILA_DIR says (a worktree elsewhere). */
export const pagilaDir = process.env.PAGILA_DIR || resolve(repoRoot, '..', 'shared', 'datasets', 'pagila');

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(argv: string[], opts: { env?: Record<string, string>; input?: string; asPostgres?: boolean } = {}): Promise<RunResult> {
  const full = opts.asPostgres && isRoot ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;
  return new Promise((res, rej) => {
    const child = spawn(full[0]!, full.slice(1), { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code) => res({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

async function mustRun(argv: string[], opts: Parameters<typeof run>[1] = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export async function startPostgres(): Promise<{ info: PgInfo; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'ct-pg-'));
  const data = join(dir, 'data');
  const password = randomBytes(12).toString('hex');
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  chmodSync(dir, 0o755);
  if (isRoot) {
    chownSync(dir, 101, 104);
    chownSync(pwfile, 101, 104);
  }
  await mustRun(
    [
      join(BIN_DIR, 'initdb'),
      '-D',
      data,
      '-U',
      'test',
      `--pwfile=${pwfile}`,
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '-E',
      'UTF8',
      '--locale=C.UTF-8',
      '--no-sync',
    ],
    { asPostgres: true },
  );
  rmSync(pwfile, { force: true });
  const port = await freePort();
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  await mustRun([join(BIN_DIR, 'pg_ctl'), 'start', '-w', '-t', '60', '-D', data, '-l', join(dir, 'server.log'), '-o', opts], {
    asPostgres: true,
  });
  const info: PgInfo = { host: '127.0.0.1', port, superuser: 'test', password, dir, binDir: BIN_DIR };
  const stop = async () => {
    await run([join(BIN_DIR, 'pg_ctl'), 'stop', '-m', 'immediate', '-D', data], { asPostgres: true });
    rmSync(dir, { recursive: true, force: true });
  };
  return { info, stop };
}

/** Superuser URL (with password) for a database of the test cluster. */
export function adminUrl(info: PgInfo, db = 'postgres'): string {
  return `postgres://${info.superuser}:${encodeURIComponent(info.password)}@${info.host}:${info.port}/${db}`;
}

/** Runs SQL as the superuser over the unix socket (trusted); returns psql -XAt output. Throws on error. */
export async function adminQuery(info: PgInfo, db: string, sql: string): Promise<string> {
  const out = await mustRun([
    join(info.binDir, 'psql'),
    '-XAtq',
    '-v',
    'ON_ERROR_STOP=1',
    '-h',
    info.dir,
    '-p',
    String(info.port),
    '-U',
    info.superuser,
    '-d',
    db,
    '-c',
    sql,
  ]);
  return out.trim();
}

export function quoteIdent(s: string): string {
  return '"' + s.replace(/"/g, '""') + '"';
}

export interface TestDatabase {
  url: string;
  name: string;
  user: string;
  password: string;
}

/**
 * A fresh database with its own app role (LOGIN, not superuser, CREATEDB so imports can build a temp database)
 * that owns it. Returns `postgres://user:pass@127.0.0.1:port/db`.
 */
export async function createTestDatabase(info: PgInfo, prefix = 'db'): Promise<string> {
  return (await createTestDatabaseInfo(info, prefix)).url;
}

export async function createTestDatabaseInfo(info: PgInfo, prefix = 'db'): Promise<TestDatabase> {
  const suffix = randomBytes(4).toString('hex');
  const name = `${prefix}_${suffix}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const user = `app_${name}`.slice(0, 60);
  const password = randomBytes(10).toString('hex');
  await adminQuery(info, 'postgres', `CREATE ROLE ${quoteIdent(user)} LOGIN NOSUPERUSER CREATEDB PASSWORD '${password}'`);
  await adminQuery(info, 'postgres', `CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(user)}`);
  return { url: `postgres://${user}:${password}@${info.host}:${info.port}/${name}`, name, user, password };
}

async function databaseOwner(info: PgInfo, db: string): Promise<string> {
  return adminQuery(info, 'postgres', `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '${db.replace(/'/g, "''")}'`);
}

/**
 * Loads pagila (schema then data) into `db`; objects are owned by the database owner.
 * On PostgreSQL 15 the three PG17-only statements fail and are ignored; any other error throws.
 */
export async function loadPagila(info: PgInfo, db: string): Promise<void> {
  const owner = await databaseOwner(info, db);
  const schema = readFileSync(join(pagilaDir, 'pagila-schema.sql'), 'utf8').replace(
    /OWNER TO postgres;/g,
    `OWNER TO ${quoteIdent(owner)};`,
  );
  const psql = [join(info.binDir, 'psql'), '-X', '-q', '-h', info.dir, '-p', String(info.port), '-U', info.superuser, '-d', db];
  const r = await run([...psql, '-f', '-'], { input: schema });
  const errors = r.stderr.split('\n').filter((l) => /ERROR:/.test(l));
  const unexpected = errors.filter(
    (l) => !/transaction_timeout|JSON_TABLE|films_per_customer_rental|syntax error at or near "(AS|\(|COLUMNS)"/.test(l),
  );
  if (r.code !== 0 || errors.length > 3 || unexpected.length > 0) throw new Error(`pagila schema failed to load:\n${errors.join('\n')}`);
  await mustRun([...psql, '-v', 'ON_ERROR_STOP=1', '-f', join(pagilaDir, 'pagila-data.sql')]);
  await adminQuery(info, db, 'ANALYZE');
}

export interface TableFingerprint {
  rows: number;
  md5: string;
}

/** For every user table: row count and md5 of its rows in a stable order (content checksum). */
export async function tableFingerprint(info: PgInfo, db: string): Promise<Record<string, TableFingerprint>> {
  const tables = (
    await adminQuery(
      info,
      db,
      `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1`,
    )
  )
    .split('\n')
    .filter(Boolean);
  const result: Record<string, TableFingerprint> = {};
  if (tables.length === 0) return result;
  const sql = tables
    .map((t) => `SELECT '${t.replace(/'/g, "''")}', count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM ${t} x`)
    .join(' UNION ALL ');
  const out = await adminQuery(info, db, sql);
  for (const line of out.split('\n').filter(Boolean)) {
    const [name, rows, md5] = line.split('|');
    result[name!] = { rows: Number(rows), md5: md5! };
  }
  return result;
}

/** `pgbench -i -s <scale>` into `db`; tables are then owned by the database owner. */
export async function pgbenchInit(info: PgInfo, db: string, scale: number): Promise<void> {
  await mustRun([
    join(info.binDir, 'pgbench'),
    '-i',
    '-q',
    '-s',
    String(scale),
    '-h',
    info.dir,
    '-p',
    String(info.port),
    '-U',
    info.superuser,
    db,
  ]);
  const owner = await databaseOwner(info, db);
  for (const t of ['pgbench_accounts', 'pgbench_branches', 'pgbench_history', 'pgbench_tellers']) {
    await adminQuery(info, db, `ALTER TABLE public.${t} OWNER TO ${quoteIdent(owner)}`);
  }
}

/** Whether a database exists in the test cluster. */
export async function databaseExists(info: PgInfo, db: string): Promise<boolean> {
  return (await adminQuery(info, 'postgres', `SELECT 1 FROM pg_database WHERE datname = '${db.replace(/'/g, "''")}'`)) === '1';
}
