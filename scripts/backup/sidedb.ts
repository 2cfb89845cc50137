// "Load into a side database, then swap it in": the two steps restore and db-import share. The live database is
// untouched until the swap, a rename pair in one transaction (the commit point of both plans); each step's undo is
// safe to run whether or not the step ran or finished, so tasks recover can use them after a kill.
import type { TaskContext } from '../core/define.ts';
import { ExitCode, TaskError } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';

type Pg = typeof import('../tools/postgres.ts');
type PgTarget = import('../tools/postgres.ts').PgTarget;

/** `<db>_<kind>_<stamp>`, shortened so it fits PostgreSQL's 63-byte identifiers (the sweep knows restore and import). */
export function sideDatabaseName(db: string, kind: 'restore' | 'import' | 'old' | 'failed', stamp: string): string {
  const suffix = `_${kind}_${stamp}`;
  return `${db.slice(0, 63 - suffix.length)}${suffix}`;
}

/** The facts both steps read: what is replaced, the side name loaded into, the name the previous one is kept under. */
export interface SideDatabase {
  target: string;
  targetExists: boolean;
  temp?: string;
  old?: string;
  /** The previous database stays as `old` after the commit (restore --keep-old). */
  keepOld: boolean;
  serverMajor?: number;
}

export interface SideEnv {
  pg: Pg;
  t: PgTarget;
  /** Name of the failed copy, should the swap be undone after the new database was in place. */
  failedName: (target: string) => string;
}

/**
 * Refuses (exit 6, before anything is loaded) when the server's disk cannot hold the side copy beside the live
 * database: about the live database's size, or the dump's for a new one (a lower bound). Skipped when the server's
 * free space cannot be read (a managed database, a role that may not see the data directory).
 */
export async function assertSideCopyFits(ctx: TaskContext, e: SideEnv, s: SideDatabase, dumpBytes: number): Promise<void> {
  if (!s.temp || ctx.runner.dryRun) return;
  const free = await e.pg.serverFreeBytes(ctx, e.t);
  if (!free) return;
  const need = s.targetExists ? await e.pg.databaseSize(ctx, e.t, s.target) : dumpBytes;
  if (free.bytes >= need) return;
  const { formatBytes } = await import('../core/log.ts');
  throw new TaskError(
    `not enough free space on the database server for the side copy of ${s.target}: about ${formatBytes(need)} needed ` +
      `(${s.targetExists ? 'the size of the live database' : 'the size of the dump'}), ${formatBytes(free.bytes)} free in ${free.where}`,
    { exitCode: ExitCode.prerequisite, hint: 'free some space on the database server (old *_old_* databases?); nothing was changed' },
  );
}

/** A fresh side database `temp`, loaded by `load`; its undo drops it. Does nothing without a temp (no database part). */
export function loadStep<S extends SideDatabase>(name: string, e: SideEnv, load: (ctx: TaskContext, s: S) => Promise<void>): Step<S> {
  return {
    name,
    async run(ctx, s) {
      if (!s.temp) return;
      await e.pg.recreateDatabase(ctx, e.t, s.temp, e.t.user, { serverMajor: s.serverMajor });
      await load(ctx, s);
    },
    async undo(ctx, s) {
      if (s.temp) await e.pg.dropDatabase(ctx, e.t, s.temp, { force: true, serverMajor: s.serverMajor });
    },
  };
}

/** The swap: the commit point. Its undo puts the previous database back; its commit drops it (unless kept). */
export function swapStep<S extends SideDatabase>(name: string, e: SideEnv): Step<S> {
  return {
    name,
    run: (ctx, s) => swapIn(ctx, e, s),
    undo: (ctx, s) => swapBack(ctx, e, s),
    // Killed during the swap: it happened when the side database is gone (the rename pair is one transaction).
    done: async (ctx, s) => !s.temp || !(await e.pg.databaseExists(ctx, e.t, s.temp)),
    commit: (ctx, s) => dropPrevious(ctx, e, s),
  };
}

async function swapIn(ctx: TaskContext, e: SideEnv, s: SideDatabase): Promise<void> {
  if (!s.temp) return;
  ctx.log.step(`swapping ${s.temp} in as ${s.target}`);
  if (s.targetExists) await e.pg.swapDatabases(ctx, e.t, { live: s.target, incoming: s.temp, aside: s.old!, serverMajor: s.serverMajor });
  else await e.pg.renameDatabase(ctx, e.t, s.temp, s.target);
}

/** The previous database back under its name (safe whether or not the swap happened). */
async function swapBack(ctx: TaskContext, e: SideEnv, s: SideDatabase): Promise<void> {
  const { pg, t } = e;
  if (!s.temp) return;
  if (!s.targetExists) {
    // A new database: renamed back to its side name, which the load step's undo drops.
    if (!(await pg.databaseExists(ctx, t, s.temp)) && (await pg.databaseExists(ctx, t, s.target))) {
      await pg.terminateSessions(ctx, t, s.target);
      await pg.renameDatabase(ctx, t, s.target, s.temp);
    }
    return;
  }
  if (!s.old || !(await pg.databaseExists(ctx, t, s.old))) return; // the swap did not happen
  if (await pg.databaseExists(ctx, t, s.target)) {
    const failed = e.failedName(s.target);
    await pg.terminateSessions(ctx, t, s.target);
    await pg.renameDatabase(ctx, t, s.target, failed);
    await pg.renameDatabase(ctx, t, s.old, s.target);
    await pg.dropDatabase(ctx, t, failed, { force: true, serverMajor: s.serverMajor });
    return;
  }
  await pg.renameDatabase(ctx, t, s.old, s.target);
}

/** After the commit: the previous database goes (a failure is reported, not turned into one), or is kept. */
async function dropPrevious(ctx: TaskContext, e: SideEnv, s: SideDatabase): Promise<void> {
  if (!s.old || !s.targetExists) return;
  if (s.keepOld) {
    ctx.log.info(`the previous database is kept as ${s.old}`);
    return;
  }
  await e.pg
    .dropDatabase(ctx, e.t, s.old, { force: true, serverMajor: s.serverMajor })
    .catch((err: unknown) =>
      ctx.log.warn(
        `the previous database is kept as ${s.old} (could not drop it: ${(err as Error).message.split('\n')[0]}); ` +
          `drop it with: tasks psql -- -d postgres -c 'DROP DATABASE "${s.old}"'`,
      ),
    );
}
