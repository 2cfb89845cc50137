// Database lifecycle tasks: migrate, seed, reset-db, psql, db-export, db-import.
import fs from 'node:fs';
import path from 'node:path';
import { defineTask, type AnyTask, type TaskContext } from '../core/define.ts';
import { ExitCode, TaskError, refused, usage } from '../core/errors.ts';
import type { Cmd } from '../core/runner.ts';
import { readOrUnknown } from '../tools/probe.ts';
import type { Step } from '../core/plan.ts';

type Pg = typeof import('../tools/postgres.ts');
type PgTarget = import('../tools/postgres.ts').PgTarget;
const pgModule = (): Promise<Pg> => import('../tools/postgres.ts');

const isProduction = (ctx: TaskContext) => ctx.env.appEnv === 'production';

/** No backup, restore, prune or other database change runs at the same time (exit 5 naming it; scripts/core/lock.ts). */
const lockChanges = async (ctx: TaskContext, task: string) => (await import('../backup/leftovers.ts')).takeChangeLock(ctx, task);

/** `${VAR}` and `${VAR:-default}` in a configured command, from the loaded environment. */
export function expandVars(s: string, get: (k: string) => string | undefined): string {
  return s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, k: string, def?: string) => get(k) || def || '');
}

/** UTC timestamp for file names: YYYY-MM-DD_HH-MM-SS. */
export function fileStamp(d = new Date()): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace('T', '_')
    .replace(/:/g, '-');
}

/** A path given on the command line, relative to the project root. */
function resolvePath(ctx: TaskContext, p: string): string {
  return path.resolve(ctx.root, p);
}

async function runMigrate(ctx: TaskContext): Promise<void> {
  const m = ctx.config.migrate;
  if (!m) {
    ctx.log.info('no migrate command configured in tasks.ts: nothing to migrate');
    return;
  }
  if (typeof m === 'function') {
    await m(ctx);
    return;
  }
  if ('kind' in m) {
    const { runSqlMigrations } = await import('../tools/migrations.ts');
    await runSqlMigrations(ctx, m);
    return;
  }
  const { compose } = await import('../tools/compose.ts');
  const command = m.command.map((a) => expandVars(a, (k) => ctx.env.get(k)));
  ctx.log.step(`migrating: ${m.service}`);
  await ctx.runner.run({ argv: compose.run(await ctx.compose(), m.service, command), stderr: 'inherit' });
  if (ctx.global.dryRun) ctx.log.info(`[dry-run] would apply the migrations (the ${m.service} command above)`);
  else ctx.log.success('migrations applied');
}

async function seedFiles(ctx: TaskContext): Promise<string[]> {
  const dir = path.resolve(ctx.root, ctx.config.seedsDir);
  if (!fs.existsSync(dir)) return [];
  const { glob } = await import('zx');
  const files = await glob(['*.sql', '*.sql.gz'], { cwd: dir, onlyFiles: true });
  return files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((f) => path.join(dir, f));
}

/** One seed file, in one transaction, stopping at the first error. */
async function loadSqlFile(
  ctx: TaskContext,
  pg: Pg,
  t: import('../tools/postgres.ts').PgTarget,
  file: string,
  database: string,
): Promise<void> {
  const project = t.mode === 'compose' ? await ctx.compose() : undefined;
  const psql = pg.clientCmd(project, t, 'psql', pg.psqlArgs({ database, singleTransaction: true, file: '-' }), {
    stdout: 'ignore',
    stderr: 'capture',
  });
  const cmd: Cmd = file.endsWith('.gz')
    ? { ...psql, argv: ['bash', '-c', pg.GUNZIP_PIPE, 'bash', ...psql.argv], stdin: { file } }
    : { ...psql, stdin: { file } };
  try {
    await ctx.runner.run(cmd);
  } catch (err) {
    const e = pg.explainPgError(err, t);
    if (e instanceof TaskError && e.name === 'CommandError') {
      const tail = (e as import('../core/errors.ts').CommandError).stderrTail
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      const line = tail.find((l) => /ERROR:|error:/.test(l)) ?? tail.at(-1) ?? '';
      throw new TaskError(
        `seed ${path.basename(file)} failed (rolled back): ` +
          `${line.replace(/^psql:[^:]*:(\d+): ERROR:\s*/, 'line $1: ').replace(/^ERROR:\s*/, '')}`,
        { exitCode: e.exitCode },
      );
    }
    throw e;
  }
}

function refuseProduction(ctx: TaskContext, task: string, force: boolean): void {
  if (isProduction(ctx) && !force) {
    throw refused(`${task} refuses to run in production (APP_ENV=production)`, `pass --force if you really mean it`);
  }
}

/** Checks a file given to db-import before anything else: exists, is a file, readable, not empty. */
function checkInputFile(file: string, shown: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw usage(`${shown}: no such file`, 'give the path of a .dump, .sql or .sql.gz file');
  }
  if (st.isDirectory()) throw usage(`${shown} is a directory, not a dump file`, 'give the path of a .dump, .sql or .sql.gz file');
  if (!st.isFile()) throw usage(`${shown} is not a regular file`);
  try {
    fs.closeSync(fs.openSync(file, 'r'));
  } catch (err) {
    throw new TaskError(`${shown} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      exitCode: ExitCode.usage,
      hint: 'check its permissions',
    });
  }
  if (st.size === 0)
    throw new TaskError(`${shown} is empty`, { exitCode: ExitCode.failure, hint: 'use another dump; nothing was changed' });
}

const migrate = defineTask({
  name: 'migrate',
  description: "Run the stack's migrations (Odoo: update modules, then stop)",
  group: 'database',
  example: 'tasks migrate',
  async run(ctx) {
    await runMigrate(ctx as TaskContext);
  },
});

const seed = defineTask({
  name: 'seed',
  description: 'Load seeds/*.sql and *.sql.gz in name order, each in one transaction',
  group: 'database',
  options: { force: { type: 'boolean', description: 'run even with APP_ENV=production' } },
  example: 'tasks seed',
  async run(ctx) {
    const c: TaskContext = ctx;
    refuseProduction(c, 'seed', ctx.opts.force);
    await lockChanges(c, 'seed');
    const pg = await pgModule();
    const t = pg.pgTarget(c);
    const files = await seedFiles(c);
    if (!files.length && !ctx.config.seedCommand) {
      ctx.log.info(`no seed files in ${ctx.config.seedsDir}/`);
      return;
    }
    for (const f of files) {
      ctx.log.step(`seeding ${path.relative(ctx.root, f)}`);
      await loadSqlFile(c, pg, t, f, t.database);
    }
    if (ctx.config.seedCommand) {
      const { compose } = await import('../tools/compose.ts');
      const sc = ctx.config.seedCommand;
      await ctx.runner.run({
        argv: compose.run(
          await ctx.compose(),
          sc.service,
          sc.command.map((a) => expandVars(a, (k) => ctx.env.get(k))),
        ),
        stderr: 'inherit',
      });
    }
    const what = `${files.length} file${files.length === 1 ? '' : 's'}${ctx.config.seedCommand ? ' and the seed command' : ''}`;
    if (ctx.global.dryRun) ctx.log.info(`[dry-run] would seed ${t.database}: ${what}`);
    else ctx.log.success(`seeded ${t.database}: ${what}`);
  },
});

const resetDb = defineTask({
  name: 'reset-db',
  description: 'Drop and recreate the database, then migrate and seed',
  group: 'database',
  options: { force: { type: 'boolean', description: 'allow in production (the database name must be typed, or --yes --force)' } },
  example: 'tasks reset-db --yes',
  async run(ctx) {
    const c: TaskContext = ctx;
    const prod = isProduction(c);
    refuseProduction(c, 'reset-db', ctx.opts.force);
    await lockChanges(c, 'reset-db');
    const pg = await pgModule();
    const t = pg.pgTarget(c);
    const { runPlan } = await import('../core/plan.ts');
    await runPlan(c, resetPlan(pg, t, { prod, force: ctx.opts.force }), {});
    if (ctx.global.dryRun) ctx.log.info(`[dry-run] would have reset ${t.database}`);
    else ctx.log.success(`${t.database} was reset`);
  },
});

/**
 * The steps of reset-db. Nothing is undone: the change is the loss of the data, asked for. A reset killed half-way is
 * run again (each step starts from whatever the last one left).
 */
function resetPlan(pg: Pg, t: PgTarget, o: { prod: boolean; force: boolean }): Step<{ serverMajor?: number }>[] {
  return [
    {
      name: 'check the server',
      run: async (c) => ({
        serverMajor: (await readOrUnknown(c, 'PostgreSQL server version', () => pg.serverVersion(c, t), undefined))?.major,
      }),
    },
    {
      name: 'confirm',
      run: (c) =>
        c.confirm({
          message:
            `reset-db drops database ${t.database} on ${pg.describeTarget(t)} (${c.env.appEnv}) ` +
            'and recreates it empty: all its data is lost',
          ...(o.prod ? { typed: t.database } : {}),
          requireForce: o.prod,
          force: o.force,
        }),
    },
    {
      name: 'recreate the database',
      async run(c, s) {
        c.log.step(`ending other sessions on ${t.database}`);
        try {
          await pg.terminateSessions(c, t, t.database);
        } catch (err) {
          throw inUseOr(err, t.database);
        }
        c.log.step(`dropping ${t.database}`);
        await pg.dropDatabase(c, t, t.database, { force: true, serverMajor: s.serverMajor });
        c.log.step(`creating ${t.database} owned by ${t.user}`);
        await pg.createDatabase(c, t, t.database, t.user);
      },
    },
    { name: 'migrate', run: (c) => runMigrate(c) },
    { name: 'seed', run: (c) => c.runTask('seed', { opts: { force: o.force } }) },
  ];
}

function inUseOr(err: unknown, db: string): unknown {
  const e = err as { stderrTail?: string };
  if (typeof e?.stderrTail === 'string' && /must be a superuser|permission denied to terminate/i.test(e.stderrTail)) {
    return refused(
      `database ${db} is in use by sessions this user cannot end; nothing was changed`,
      'close the other connections (stop the app: tasks stop) and retry',
    );
  }
  return err;
}

const psql = defineTask({
  name: 'psql',
  description: 'An interactive psql shell on the application database',
  group: 'database',
  args: { args: { description: 'arguments passed to psql (after --)', variadic: true } },
  example: "tasks psql -- -c 'select 1'",
  async run(ctx) {
    const c: TaskContext = ctx;
    const pg = await pgModule();
    const t = pg.pgTarget(c);
    const project = t.mode === 'compose' ? await ctx.compose() : undefined;
    const cmd = pg.clientCmd(project, t, 'psql', ['--dbname', t.database, ...ctx.args.args], {
      tty: ctx.interactive,
      prompt: ctx.interactive,
      stdin: 'inherit',
      stdout: 'inherit',
      stderr: 'inherit',
    });
    try {
      await ctx.runner.run(cmd);
    } catch (err) {
      throw pg.explainPgError(err, t);
    }
  },
});

const dbExport = defineTask({
  name: 'db-export',
  description: 'Dump the database: custom format, or plain .sql / .sql.gz by extension',
  group: 'database',
  args: { file: { description: 'output file (default backup/<db>_<UTC time>.dump)' } },
  options: {
    force: { type: 'boolean', description: 'overwrite an existing file' },
    verify: {
      type: 'boolean',
      description: 'also read every data block of the finished custom-format dump (pg_restore -f /dev/null) before publishing it',
    },
  },
  example: 'tasks db-export backup/before-upgrade.sql.gz',
  async run(ctx) {
    const c: TaskContext = ctx;
    const pg = await pgModule();
    const t = pg.pgTarget(c);
    const dir = path.relative(ctx.root, (await import('../backup/store.ts')).backupDir(c)) || '.';
    const shown = ctx.args.file ?? path.join(dir, `${t.database}_${fileStamp()}.dump`);
    const file = resolvePath(c, shown);
    if (fs.existsSync(file) && fs.statSync(file).isDirectory())
      throw usage(`${shown} is a directory`, 'give a file name ending in .dump, .sql or .sql.gz');
    if (fs.existsSync(file) && !ctx.opts.force)
      throw usage(`${shown} already exists`, 'choose another name or pass --force to overwrite it');
    const format = pg.formatFromName(file);
    // The versions are read while pg_dump runs (it refuses a newer server by itself); a mismatch is reported with
    // both versions and nothing is written under the final name. A connection error is reported from the probe.
    // Deferred a turn so that pg_dump, the long step, is the first process started.
    const versions = new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      Promise.all([
        readOrUnknown(c, 'PostgreSQL server version', () => pg.serverVersion(c, t), undefined),
        readOrUnknown(c, 'pg_dump version', () => pg.clientVersion(c, t, 'pg_dump'), undefined),
      ]),
    );
    versions.catch(() => undefined);
    const compatible = async () => {
      const [server, client] = await versions;
      if (server) pg.assertDumpCompatible({ server, pgDump: client });
      return server;
    };
    ctx.log.step(`exporting ${t.database} to ${shown}`);
    let r: { bytes: number; ms: number };
    try {
      r = await pg.dumpDatabase(c, t, {
        file,
        format,
        verify: ctx.opts.verify,
        beforePublish: async () => {
          await compatible();
        },
      });
    } catch (err) {
      await compatible();
      throw err;
    }
    const server = await compatible();
    if (ctx.global.dryRun || !server) return;
    const { formatBytes, formatDuration } = await import('../core/log.ts');
    ctx.log.success(`exported ${t.database} (PostgreSQL ${server.text}) to ${shown}: ${formatBytes(r.bytes)} in ${formatDuration(r.ms)}`);
    ctx.out.write(`${file}\n`);
  },
});

const dbImport = defineTask({
  name: 'db-import',
  description: 'Replace the database with a .dump, .sql or .sql.gz file (kept as it was if the import fails)',
  group: 'database',
  args: { file: { description: 'a dump made by db-export or pg_dump', required: true } },
  options: {
    force: { type: 'boolean', description: 'allow in production (the database name must be typed, or --yes --force)' },
    jobs: { type: 'string', description: 'parallel pg_restore jobs (custom format)', default: '1', placeholder: 'n' },
  },
  example: 'tasks db-import backup/odoo_2024-05-01_02-00-00.dump --yes',
  async run(ctx) {
    const c: TaskContext = ctx;
    const prod = isProduction(c);
    refuseProduction(c, 'db-import', ctx.opts.force);
    const jobs = Number(ctx.opts.jobs);
    if (!Number.isInteger(jobs) || jobs < 1) throw usage(`--jobs must be a positive integer (got ${ctx.opts.jobs})`);
    const shown = ctx.args.file;
    const file = resolvePath(c, shown);
    checkInputFile(file, shown);
    await lockChanges(c, 'db-import');
    const pg = await pgModule();
    const format = pg.sniffDumpFormat(file);
    if (format === 'unknown')
      throw new TaskError(`${shown} is not a PostgreSQL dump (neither a custom-format archive, gzip nor SQL text)`, {
        hint: 'nothing was changed',
      });
    const t = pg.pgTarget(c);
    const size = fs.statSync(file).size;
    const { formatBytes, formatDuration } = await import('../core/log.ts');
    const { importFacts, importPlan, importState, IMPORT_COMMIT_POINT } = await import('../backup/import.ts');
    const input = {
      pg,
      t,
      file,
      shown,
      format,
      jobs,
      confirm: () =>
        ctx.confirm({
          message:
            `db-import replaces database ${t.database} on ${pg.describeTarget(t)} (${ctx.env.appEnv}) ` +
            `with ${shown} (${formatBytes(size)})`,
          ...(prod ? { typed: t.database } : {}),
          requireForce: prod,
          force: ctx.opts.force,
        }),
    };
    const started = Date.now();
    const { journalHooks, openJournal } = await import('../core/journal.ts');
    const { backupDir } = await import('../backup/store.ts');
    const journal = openJournal(backupDir(c), 'db-import');
    const { runPlan } = await import('../core/plan.ts');
    await runPlan(c, importPlan(input), importState(t.database), journalHooks(journal, importFacts(input), IMPORT_COMMIT_POINT));
    if (ctx.global.dryRun) {
      ctx.log.info(`[dry-run] would have imported ${shown} into ${t.database}`);
      return;
    }
    ctx.log.success(`imported ${shown} into ${t.database} in ${formatDuration(Date.now() - started)}`);
  },
});

export const databaseTasks: AnyTask[] = [migrate, seed, resetDb, psql, dbExport, dbImport];
