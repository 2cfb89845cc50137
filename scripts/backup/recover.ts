// tasks recover: a backup, restore or db-import that was killed (kill -9, the OOM killer, a closed SSH session, a
// reboot) is finished or undone from its journal (scripts/core/journal.ts), with the plan's own steps: before the commit
// point its undos run (the previous database and folders back, the app started); after it, the rest of the plan runs
// again (each step is safe to re-run) and its commits remove the old copies. What is left over is swept afterwards.
import fs from 'node:fs';
import { defineTask, type TaskContext } from '../core/define.ts';
import { TaskError } from '../core/errors.ts';
import { describeUnfinished, journalHooks, openJournal, readUnfinished, type Unfinished } from '../core/journal.ts';
import { runPlan, uninterruptible, undoPlan, type Step } from '../core/plan.ts';
import { backupDir } from './store.ts';

/** A plan rebuilt from a journal: its steps, the state its records hold, and what the journal keeps of it. */
interface Recovery<S> {
  plan: Step<S>[];
  state: S;
  facts: (s: S) => Record<string, unknown>;
  commitPoint: string;
  /** What is removed in any case once it is done (the unpack folder, a partial download). */
  paths: string[];
}

/** A restore from its facts (restoreFacts in restore.ts). */
async function restoreRecovery(ctx: TaskContext, u: Unfinished): Promise<Recovery<import('./restore.ts').RestoreState>> {
  const r = await import('./restore.ts');
  const pg = await import('../tools/postgres.ts');
  const f = u.last.facts as Record<string, unknown> & { stopped?: string[]; folders?: []; work: string; stamp: string };
  const e = { o: {}, pg, t: pg.pgTarget(ctx), work: f.work, stamp: f.stamp };
  const stopped = f.stopped ?? [];
  const state = {
    ...r.emptyRestoreState(String(f.database)),
    name: String(f.backup ?? ''),
    file: typeof f.download === 'string' ? f.download : '',
    downloaded: typeof f.download === 'string',
    targetExists: Boolean(f.targetExists),
    keepOld: Boolean(f.keepOld),
    temp: f.temp as string | undefined,
    old: f.old as string | undefined,
    safetyName: f.safetyName as string | undefined,
    safetyParts: Array.isArray(f.safetyParts) ? (f.safetyParts as string[]) : [],
    stopped,
    folders: f.folders ?? [],
    project: stopped.length ? await ctx.compose() : undefined,
  };
  return {
    plan: r.restorePlan(e),
    state,
    facts: (s) => r.restoreFacts(s, e),
    commitPoint: r.RESTORE_COMMIT_POINT,
    paths: [f.work, ...(state.downloaded ? [state.file] : [])],
  };
}

/** A db-import from its facts (importFacts in import.ts). */
async function importRecovery(ctx: TaskContext, u: Unfinished): Promise<Recovery<import('./import.ts').ImportState>> {
  const m = await import('./import.ts');
  const pg = await import('../tools/postgres.ts');
  const f = u.last.facts as { backup?: string; file?: string; database: string; targetExists?: boolean; temp?: string; old?: string };
  const input = { pg, t: pg.pgTarget(ctx), file: String(f.file ?? ''), shown: String(f.backup ?? ''), format: 'custom' as const, jobs: 1 };
  const state = { ...m.importState(f.database, u.pid), targetExists: Boolean(f.targetExists), temp: f.temp, old: f.old };
  return { plan: m.importPlan(input), state, facts: m.importFacts(input), commitPoint: m.IMPORT_COMMIT_POINT, paths: [] };
}

type AnyRecovery = (ctx: TaskContext, u: Unfinished) => Promise<Recovery<object>>;
const RECOVERIES: Record<string, AnyRecovery> = {
  restore: restoreRecovery as AnyRecovery,
  'db-import': importRecovery as AnyRecovery,
};

/**
 * Finishes or undoes one interrupted change, then removes its journal. A change with no recovery of its own (a backup:
 * nothing it made is live until it is published) only leaves files, which the sweep removes.
 */
export async function recoverUnfinished(ctx: TaskContext, u: Unfinished): Promise<'finished' | 'undone' | 'swept'> {
  const line = describeUnfinished(u);
  const journal = openJournal(backupDir(ctx), u.op, u.pid);
  const build = RECOVERIES[u.op];
  if (!build) {
    ctx.log.info(`${line}: nothing it made was in use; what it left is removed`);
    journal.remove();
    return 'swept';
  }
  const r = await build(ctx, u);
  const at = r.plan.findIndex((st) => st.name === u.last.step);
  if (at < 0)
    throw new TaskError(`${u.file}: '${u.last.step}' is not a step of ${u.op}: this journal was written by another version`, {
      hint: `finish the change by hand with what the journal records, then remove ${u.file}`,
    });
  const step = r.plan[at]!;
  const passed = u.last.committed || (step.name === r.commitPoint && (await step.done?.(ctx, r.state)) === true);
  if (passed) {
    ctx.log.step(`${line}: it had passed its commit point, finishing it`);
    await runPlan(ctx, r.plan, r.state, journalHooks(journal, r.facts, r.commitPoint, true), {
      resumeAt: u.last.committed ? at : at + 1,
    });
  } else {
    ctx.log.step(`${line}: undoing it`);
    await undoPlan(uninterruptible(ctx), r.plan, r.state, at, new TaskError(`${line}`));
    journal.remove();
  }
  for (const p of r.paths) fs.rmSync(p, { recursive: true, force: true });
  ctx.log.success(`${u.op} ${passed ? 'finished' : 'undone'}: ${passed ? 'the new state is complete' : 'the previous state is back'}`);
  return passed ? 'finished' : 'undone';
}

export const recover = defineTask({
  name: 'recover',
  description: 'Finish or undo a restore or backup that was killed (its journal says which), start the app, remove what it left',
  group: 'backups',
  example: 'tasks recover',
  async run(ctx) {
    const found = readUnfinished(backupDir(ctx));
    if (ctx.runner.dryRun) {
      for (const u of found) ctx.log.info(`[dry-run] would recover: ${describeUnfinished(u)}`);
      if (!found.length) ctx.log.info('[dry-run] nothing to recover: no change was interrupted');
      return;
    }
    // Holding the change lock proves the run that wrote a journal is gone; taking it for 'recover' recovers.
    await (await import('./leftovers.ts')).takeChangeLock(ctx, 'recover');
    if (!found.length) ctx.log.success('nothing to recover: no change was interrupted');
  },
});
