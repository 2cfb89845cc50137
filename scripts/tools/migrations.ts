// SQL migrations (the `sqlMigrations` kind of ProjectConfig.migrate): `NNN_name.sql` files applied in order, each in
// one transaction with its record in a table (version, name, checksum, applied_at), as Flyway or Prisma Migrate do.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { SqlMigrations, TaskContext } from '../core/define.ts';
import { CommandError, ExitCode, TaskError, refused } from '../core/errors.ts';
import { readOrUnknown } from './probe.ts';

export const MIGRATION_FILE = /^(\d+)_([A-Za-z0-9][\w.-]*)\.sql$/;
export const DEFAULT_MIGRATIONS_TABLE = 'schema_migrations';

/** Declares SQL migrations for `tasks migrate`: every `NNN_name.sql` in `dir` (relative to the project root). */
export function sqlMigrations(dir: string, o: { table?: string } = {}): SqlMigrations {
  return { kind: 'sqlMigrations', dir, ...(o.table ? { table: o.table } : {}) };
}

export interface MigrationFile {
  version: number;
  name: string;
  file: string;
  /** sha256 of the file's bytes, hex. */
  checksum: string;
}

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
}

/** The migration files of `dir` in version order; a .sql file that does not follow NNN_name.sql, or a repeated version, is an error. */
export function migrationFiles(dir: string, shownDir = dir): MigrationFile[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: MigrationFile[] = [];
  for (const n of names.filter((f) => f.endsWith('.sql')).sort()) {
    const m = MIGRATION_FILE.exec(n);
    if (!m)
      throw new TaskError(`${shownDir}/${n} is not named like a migration (NNN_name.sql)`, {
        hint: 'rename it, e.g. 004_add_orders.sql (the number decides the order)',
      });
    const version = Number(m[1]);
    const twin = out.find((f) => f.version === version);
    if (twin)
      throw new TaskError(`${shownDir}/${n} and ${path.basename(twin.file)} have the same version ${version}`, {
        hint: 'give one of them the next free number',
      });
    const file = path.join(dir, n);
    out.push({ version, name: m[2]!, file, checksum: crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex') });
  }
  return out.sort((a, b) => a.version - b.version);
}

export interface MigrationPlan {
  pending: MigrationFile[];
  /** Applied versions with no file any more (reported, not an error). */
  missing: AppliedMigration[];
}

/**
 * What to apply: the files not recorded yet. Refuses (nothing is applied) when an applied file changed since, or when a
 * new file sorts before the newest applied one (it would run out of order on this database but in order on a fresh one).
 */
export function planMigrations(files: MigrationFile[], applied: AppliedMigration[], shownDir: string): MigrationPlan {
  const byVersion = new Map(files.map((f) => [f.version, f]));
  for (const a of applied) {
    const f = byVersion.get(a.version);
    if (f && f.checksum !== a.checksum)
      throw refused(
        `migrate refuses: ${shownDir}/${path.basename(f.file)} was changed after it was applied ` +
          `(checksum ${a.checksum.slice(0, 12)} recorded, ` +
          `${f.checksum.slice(0, 12)} now); nothing was applied`,
        'restore the applied file as it was and put the change in a new migration',
      );
  }
  const done = new Set(applied.map((a) => a.version));
  const pending = files.filter((f) => !done.has(f.version));
  const newest = Math.max(-1, ...applied.map((a) => a.version));
  const early = pending.find((f) => f.version < newest);
  if (early)
    throw refused(
      `migrate refuses: ${shownDir}/${path.basename(early.file)} is older than the newest applied migration ` +
        `(${newest}); nothing was applied`,
      'renumber it after the newest applied one',
    );
  return { pending, missing: applied.filter((a) => !byVersion.has(a.version)) };
}

const tableSql = (table: string) =>
  `CREATE TABLE IF NOT EXISTS ${table} (version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, ` +
  'applied_at timestamptz NOT NULL DEFAULT now())';

/** `tasks migrate` for a sqlMigrations config: on the application database (compose service or DATABASE_URL). */
export async function runSqlMigrations(ctx: TaskContext, m: SqlMigrations): Promise<void> {
  const pg = await import('./postgres.ts');
  const t = pg.pgTarget(ctx);
  const table = m.table ?? DEFAULT_MIGRATIONS_TABLE;
  if (!/^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/.test(table))
    throw new TaskError(`the migrations table "${table}" must be a lower-case SQL name (schema.table allowed)`, {
      exitCode: ExitCode.invalidEnv,
      hint: 'fix migrate.table in tasks.ts',
    });
  const dir = path.resolve(ctx.root, m.dir);
  const shownDir = path.relative(ctx.root, dir) || '.';
  const files = migrationFiles(dir, shownDir);
  // Read-only facts (they run in dry-run too): the recorded migrations, once the table exists.
  const exists = await readOrUnknown(
    ctx,
    `the migrations applied (${table})`,
    async () => (await pg.psqlQuery(ctx, t, `SELECT to_regclass(${pg.quoteLiteral(table)}) IS NOT NULL`, { probe: true })) === 't',
    false,
  );
  const applied: AppliedMigration[] = exists
    ? (await pg.psqlQuery(ctx, t, `SELECT version, name, checksum FROM ${table} ORDER BY version`, { probe: true }))
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [version = '', name = '', checksum = ''] = l.split('|');
          return { version: Number(version), name, checksum };
        })
    : [];
  const plan = planMigrations(files, applied, shownDir);
  for (const a of plan.missing)
    ctx.log.warn(`migration ${a.version} (${a.name}) is recorded in ${table} but its file is gone from ${shownDir}/`);
  if (!plan.pending.length) {
    ctx.log.success(`${t.database} is up to date: ${applied.length} migration${applied.length === 1 ? '' : 's'} applied, nothing to do`);
    return;
  }
  if (!exists) await pg.psqlQuery(ctx, t, tableSql(table));
  const project = t.mode === 'compose' ? await ctx.compose() : undefined;
  for (const f of plan.pending) {
    const shown = `${shownDir}/${path.basename(f.file)}`;
    ctx.log.step(`applying ${shown}`);
    // The record first, then the file, all in one transaction: a second migrate running at the same time waits on the
    // record's key and fails before running the file; a failing file leaves neither its changes nor its record.
    const record =
      `INSERT INTO ${table} (version, name, checksum) VALUES ` +
      `(${f.version}, ${pg.quoteLiteral(f.name)}, ${pg.quoteLiteral(f.checksum)})`;
    const cmd = pg.clientCmd(
      project,
      t,
      'psql',
      pg.psqlArgs({ database: t.database, command: record, singleTransaction: true, file: '-' }),
      { stdin: { file: f.file }, stdout: 'ignore', stderr: 'capture' },
    );
    try {
      await ctx.runner.run(cmd);
    } catch (err) {
      const e = pg.explainPgError(err, t);
      if (e instanceof CommandError) {
        const tail = e.stderrTail
          .split('\n')
          .map((l) => l.trim())
          .filter(Boolean);
        const line = tail.find((l) => /ERROR:/.test(l)) ?? tail.at(-1) ?? '';
        throw new TaskError(
          `migration ${shown} failed (rolled back, not recorded): ` +
            line.replace(/^psql:[^:]*:(\d+): ERROR:\s*/, 'line $1: ').replace(/^ERROR:\s*/, ''),
          { exitCode: e.exitCode, hint: 'fix the file and run tasks migrate again; earlier migrations stay applied' },
        );
      }
      throw e;
    }
  }
  if (ctx.global.dryRun) return;
  ctx.log.success(`applied ${plan.pending.length} migration${plan.pending.length === 1 ? '' : 's'} to ${t.database}`);
}
