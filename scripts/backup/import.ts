// db-import <file> as a plan: check the dump against the server, confirm, load it into a side database, swap it in
// (the commit point), drop the previous one. Journaled like a restore, so tasks recover can undo or finish it.
import type { TaskContext } from '../core/define.ts';
import { TaskError } from '../core/errors.ts';
import type { Step } from '../core/plan.ts';
import { readOrUnknown } from '../tools/probe.ts';
import { loadStep, sideDatabaseName, swapStep, type SideDatabase, type SideEnv } from './sidedb.ts';

type Pg = typeof import('../tools/postgres.ts');
type PgTarget = import('../tools/postgres.ts').PgTarget;
type DumpFormat = import('../tools/postgres.ts').DumpFormat;

export interface ImportInput {
  pg: Pg;
  t: PgTarget;
  /** The dump, and the name the user gave it (messages). */
  file: string;
  shown: string;
  format: DumpFormat;
  jobs: number;
  /** The confirmation (the task's ctx.confirm with its options); tasks recover passes none. */
  confirm?: (ctx: TaskContext, s: ImportState) => Promise<void>;
}

export type ImportState = SideDatabase & { size?: number };

export const IMPORT_COMMIT_POINT = 'swap the database';

/** The side names of this process's import (the sweep knows `<db>_import_<pid>`). */
export function importState(database: string, pid = process.pid): ImportState {
  return {
    target: database,
    targetExists: true,
    keepOld: false,
    temp: sideDatabaseName(database, 'import', String(pid)),
    old: sideDatabaseName(database, 'old', String(pid)),
  };
}

const importSideEnv = (i: Pick<ImportInput, 'pg' | 't'>): SideEnv => ({
  pg: i.pg,
  t: i.t,
  failedName: (target) => sideDatabaseName(target, 'failed', String(process.pid)),
});

/** The journal's facts. */
export const importFacts = (i: ImportInput) => (s: ImportState) => ({
  backup: i.shown,
  file: i.file,
  database: s.target,
  targetExists: s.targetExists,
  temp: s.temp,
  old: s.old,
  serverMajor: s.serverMajor,
});

/** The steps of a db-import, in order. */
export function importPlan(i: ImportInput): Step<ImportState>[] {
  const e = importSideEnv(i);
  return [
    { name: 'check the dump', run: (ctx, s) => checkDump(ctx, i, s) },
    { name: 'confirm', run: async (ctx, s) => i.confirm?.(ctx, s) },
    loadStep('load into a side database', e, (ctx, s: ImportState) => load(ctx, i, s)),
    swapStep(IMPORT_COMMIT_POINT, e),
  ];
}

/** The server, the dump's header and the target's existence, side by side; the first problem in that order is reported. */
async function checkDump(ctx: TaskContext, i: ImportInput, s: ImportState): Promise<Partial<ImportState>> {
  const { pg, t, file, shown, format } = i;
  const [serverR, headerR, existsR] = await Promise.allSettled([
    readOrUnknown(ctx, 'PostgreSQL server version', () => pg.serverVersion(ctx, t), undefined),
    readOrUnknown(ctx, `the versions in ${shown}`, () => pg.dumpHeader(ctx, t, file), { format }),
    readOrUnknown(ctx, `whether database ${s.target} exists`, () => pg.databaseExists(ctx, t, s.target), true),
  ]);
  if (serverR.status === 'rejected') throw serverR.reason;
  const server = serverR.value;
  if (headerR.status === 'rejected') {
    const err = headerR.reason as unknown;
    if (err instanceof TaskError)
      throw new TaskError(err.message.replace(file, shown), { exitCode: err.exitCode, hint: 'nothing was changed' });
    throw err;
  }
  const header = headerR.value;
  if (existsR.status === 'rejected') throw existsR.reason;
  if (server && header.dumpedFromMajor !== undefined) {
    pg.assertDumpCompatible({
      server,
      dumpedFrom: { major: header.dumpedFromMajor, text: header.dumpedFrom ?? String(header.dumpedFromMajor) },
      file: shown,
    });
  }
  return { serverMajor: server?.major, targetExists: existsR.value };
}

async function load(ctx: TaskContext, i: ImportInput, s: ImportState): Promise<void> {
  ctx.log.step(`restoring ${i.shown} into a new database ${s.temp}`);
  try {
    await i.pg.restoreDump(ctx, i.t, { file: i.file, database: s.temp!, jobs: i.jobs, format: i.format });
  } catch (err) {
    if (err instanceof TaskError)
      throw new TaskError(`${err.message.replace(i.file, i.shown)}`, { exitCode: err.exitCode, hint: `${s.target} was not changed` });
    throw err;
  }
}
