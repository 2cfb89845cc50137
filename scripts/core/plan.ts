// A change as a plan of named steps run by one interpreter: dry-run, undo in reverse, the health phase, commit.
import type { TaskContext } from './define.ts';
import { ExitCode, TaskError } from './errors.ts';
import { createRunner } from './runner.ts';

export interface Step<S> {
  name: string;
  /** 'health': a failure here keeps the result (nothing is undone); the error is reported as it is. */
  phase?: 'change' | 'health';
  // biome-ignore lint/suspicious/noConfusingVoidType: a step adds facts to the state, or nothing
  run(ctx: TaskContext, s: S): Promise<Partial<S> | void>;
  /** Registered before run starts: it must cope with a run that stopped half-way. */
  undo?(ctx: TaskContext, s: S): Promise<void>;
  /** Run once after the last step succeeded (old copies removed and the like). */
  commit?(ctx: TaskContext, s: S): Promise<void>;
  /** For tasks recover, on the commit point's step: whether a run of it that was killed had finished (probed). */
  done?(ctx: TaskContext, s: S): Promise<boolean>;
}

/** Steps run at the same time; their undos and commits run together too. A failure fails the whole step. */
export function parallel<S>(name: string, steps: Step<S>[]): Step<S> {
  const all = async (pick: (st: Step<S>) => Promise<unknown> | undefined) => {
    const results = await Promise.allSettled(steps.map((st) => pick(st)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return results.map((r) => (r as PromiseFulfilledResult<unknown>).value);
  };
  return {
    name,
    phase: steps.some((st) => st.phase === 'health') ? 'health' : 'change',
    async run(ctx, s) {
      const parts = (await all((st) => st.run(ctx, s))) as (Partial<S> | undefined)[];
      return Object.assign({}, ...parts.filter(Boolean)) as Partial<S>;
    },
    async undo(ctx, s) {
      await all((st) => st.undo?.(ctx, s));
    },
    async commit(ctx, s) {
      await all((st) => st.commit?.(ctx, s));
    },
  };
}

/** A context like ctx whose runners ignore the interrupt signal (undo must run after Ctrl-C too); the launcher is kept. */
export function uninterruptible(ctx: TaskContext): TaskContext {
  const runner = createRunner({ log: ctx.log, dryRun: ctx.runner.dryRun, env: ctx.runner.env, cwd: ctx.root, exec: ctx.runner.exec });
  const probe = createRunner({ log: ctx.probe.log, env: ctx.probe.env, cwd: ctx.root, exec: ctx.probe.exec });
  return { ...ctx, runner, probe, signal: new AbortController().signal };
}

/** Observers of a plan's progress (the journal): called before each step runs (health steps too), and at the end. */
export interface PlanHooks<S> {
  beforeStep?(step: Step<S>, index: number, s: S): void | Promise<void>;
  /** All steps and commits ran. */
  committed?(s: S): void | Promise<void>;
  /** A step failed and every undo ran: the previous state is back. */
  undone?(s: S): void | Promise<void>;
  /** A health step failed: the result is kept as it is (nothing undone, nothing committed). */
  kept?(s: S): void | Promise<void>;
}

/** How runPlan starts: `resumeAt` (tasks recover) treats the steps before it as done: their undos count, they do not run. */
export interface PlanStart {
  resumeAt?: number;
}

/**
 * Test-only hook: COMPOSE_TASKS_STOP_AFTER_STEP=<step name> makes the interpreter SIGKILL its own process right after
 * that step finishes, so tests can check what a change killed at any step boundary leaves.
 */
export const STOP_AFTER_STEP = 'COMPOSE_TASKS_STOP_AFTER_STEP';

/**
 * Runs the steps in order, each with the state the earlier ones returned. The only place that reads dry-run for a plan:
 * in dry-run each step name is printed and the step still runs (its commands go through the runner, which prints and
 * skips them). On a failure the undos registered so far run in reverse through an uninterruptible runner, then the
 * error is rethrown; a failure in phase 'health' keeps the result. After the last step, the commits run in order.
 */
export async function runPlan<S extends object>(
  ctx: TaskContext,
  plan: Step<S>[],
  init: S,
  hooks: PlanHooks<S> = {},
  start: PlanStart = {},
): Promise<S> {
  let s = { ...init };
  const from = start.resumeAt ?? 0;
  const undos: Step<S>[] = plan.slice(0, from).filter((st) => st.undo);
  const dry = ctx.runner.dryRun;
  for (const [i, step] of plan.entries()) {
    if (i < from) continue;
    if (dry) ctx.log.info(`[dry-run] step ${i + 1}/${plan.length}: ${step.name}`);
    if (!dry) await hooks.beforeStep?.(step, i, s);
    if (step.undo) undos.push(step);
    try {
      s = { ...s, ...((await step.run(ctx, s)) ?? {}) };
    } catch (err) {
      // An interrupt (Ctrl-C, SIGTERM, SIGHUP) during the health phase still puts everything back.
      if (step.phase === 'health' && !ctx.signal.aborted) {
        if (!dry) await hooks.kept?.(s);
        throw err;
      }
      await undoAll(ctx, undos, s, err);
      if (!dry) await hooks.undone?.(s);
      throw err;
    }
    if (!dry && process.env[STOP_AFTER_STEP] === step.name) process.kill(process.pid, 'SIGKILL');
  }
  for (const step of plan) await step.commit?.(ctx, s);
  if (!dry) await hooks.committed?.(s);
  return s;
}

/** Runs the undos of plan[0..through] in reverse (tasks recover, for a change killed before its commit point). */
export async function undoPlan<S>(ctx: TaskContext, plan: Step<S>[], s: S, through: number, cause: unknown): Promise<void> {
  await undoAll(
    ctx,
    plan.slice(0, through + 1).filter((st) => st.undo),
    s,
    cause,
  );
}

async function undoAll<S>(ctx: TaskContext, undos: Step<S>[], s: S, cause: unknown): Promise<void> {
  const quiet = uninterruptible(ctx);
  const unfinished: string[] = [];
  for (const step of [...undos].reverse()) {
    try {
      await step.undo!(quiet, s);
    } catch (err) {
      const hint = err instanceof TaskError && err.hint ? ` (${err.hint})` : '';
      ctx.log.warn(`undo of '${step.name}' failed: ${(err as Error).message.split('\n')[0]}${hint}`);
      unfinished.push(step.name);
    }
  }
  if (unfinished.length)
    throw new TaskError(`${(cause as Error).message.split('\n')[0]}; the undo did not finish: ${unfinished.join(', ')}`, {
      exitCode: cause instanceof TaskError ? cause.exitCode : ExitCode.failure,
      hint: 'finish it by hand: the warnings above name each step that was not undone',
      cause,
    });
}
