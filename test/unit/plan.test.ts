import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TaskContext } from '../../scripts/core/define.ts';
import { CommandError, ExitCode, TaskError } from '../../scripts/core/errors.ts';
import { describeUnfinished, journalHooks, openJournal, readUnfinished } from '../../scripts/core/journal.ts';
import { createLogger } from '../../scripts/core/log.ts';
import { parallel, runPlan, type Step } from '../../scripts/core/plan.ts';
import { readOrUnknown } from '../../scripts/tools/probe.ts';
import { createRunner, type Exec } from '../../scripts/core/runner.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-plan-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A context with a recording launcher (no process is started) and a log captured as text. */
function fakeCtx(dryRun = false, abort?: AbortController) {
  let text = '';
  const ran: string[] = [];
  const log = createLogger({ sink: { write: (s: string) => (text += s) } });
  const exec: Exec = async (cmd) => {
    ran.push(cmd.argv.join(' '));
    return { code: 0, stdout: '', stderr: '' };
  };
  const env = { PATH: process.env.PATH };
  const runner = createRunner({ log, dryRun, env, cwd: process.cwd(), exec, signal: abort?.signal });
  const probe = createRunner({ log, env, cwd: process.cwd(), exec });
  const ctx = { runner, probe, log, root: process.cwd(), signal: abort?.signal ?? new AbortController().signal } as unknown as TaskContext;
  return { ctx, ran, text: () => text };
}

interface S {
  trail: string[];
  n?: number;
}

/** A step that records its run, undo and commit in order, and runs one command through the runner. */
const step = (name: string, events: string[], extra: Partial<Step<S>> = {}): Step<S> => ({
  name,
  async run(ctx) {
    events.push(`run ${name}`);
    await ctx.runner.run({ argv: ['echo', name] });
  },
  async undo(ctx) {
    events.push(`undo ${name}`);
    await ctx.runner.run({ argv: ['undo', name] });
  },
  async commit() {
    events.push(`commit ${name}`);
  },
  ...extra,
});

const fail = (msg: string) => async () => {
  throw new TaskError(msg, { exitCode: ExitCode.failure });
};

describe('runPlan', () => {
  it('runs the steps in order, passes the state on, and commits after the last step', async () => {
    const events: string[] = [];
    const { ctx, ran } = fakeCtx();
    const plan: Step<S>[] = [
      step('a', events, { run: async () => ({ n: 1 }) }),
      step('b', events, {
        run: async (_c, s) => {
          events.push(`b sees ${s.n}`);
          return { n: (s.n ?? 0) + 1 };
        },
      }),
      step('c', events),
    ];
    const s = await runPlan(ctx, plan, { trail: [] });
    expect(s.n).toBe(2);
    expect(events).toEqual(['b sees 1', 'run c', 'commit a', 'commit b', 'commit c']);
    expect(ran).toEqual(['echo c']);
  });

  it('on a failure runs the undos registered so far in reverse (the failed step too), not the later ones, and rethrows', async () => {
    const events: string[] = [];
    const { ctx } = fakeCtx();
    const plan = [step('a', events), step('b', events), step('c', events, { run: fail('c broke') }), step('d', events)];
    const err = await runPlan(ctx, plan, { trail: [] }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('c broke');
    expect(events).toEqual(['run a', 'run b', 'undo c', 'undo b', 'undo a']);
  });

  it('undoes through a runner that ignores the interrupt and keeps the injected launcher', async () => {
    const events: string[] = [];
    const abort = new AbortController();
    const { ctx, ran } = fakeCtx(false, abort);
    const plan = [
      step('a', events),
      step('b', events, {
        run: async () => {
          abort.abort('SIGTERM');
          throw new TaskError('interrupted (SIGTERM)', { exitCode: ExitCode.sigterm });
        },
      }),
    ];
    const err = await runPlan(ctx, plan, { trail: [] }).catch((e: unknown) => e);
    expect((err as TaskError).exitCode).toBe(ExitCode.sigterm);
    expect(ran).toEqual(['echo a', 'undo b', 'undo a']);
  });

  it('a failed undo is named in the error with a hint to finish it by hand; the other undos still run', async () => {
    const events: string[] = [];
    const { ctx } = fakeCtx();
    const plan = [step('a', events), step('b', events, { undo: fail('no undo') }), step('c', events, { run: fail('c broke') })];
    const err = (await runPlan(ctx, plan, { trail: [] }).catch((e: unknown) => e)) as TaskError;
    expect(err.message).toBe('c broke; the undo did not finish: b');
    expect(err.hint).toBe('finish it by hand: the warnings above name each step that was not undone');
    expect(events).toContain('undo a');
  });

  it('a failure in the health phase keeps the result: nothing is undone or committed', async () => {
    const events: string[] = [];
    const { ctx } = fakeCtx();
    const unhealthy = new TaskError('unhealthy', { exitCode: ExitCode.unhealthy });
    const plan = [
      step('a', events),
      step('health', events, {
        phase: 'health',
        run: async () => {
          throw unhealthy;
        },
      }),
    ];
    await expect(runPlan(ctx, plan, { trail: [] })).rejects.toBe(unhealthy);
    expect(events).toEqual(['run a']);
  });

  it('in dry-run prints the plan step by step and the runner prints the commands without running them', async () => {
    const events: string[] = [];
    const { ctx, ran, text } = fakeCtx(true);
    await runPlan(ctx, [step('stop app', events), step('swap database', events)], { trail: [] });
    expect(ran).toEqual([]);
    const out = text();
    expect(out).toContain('[dry-run] step 1/2: stop app');
    expect(out).toContain('[dry-run] step 2/2: swap database');
    expect(out.indexOf('step 1/2')).toBeLessThan(out.indexOf("echo 'stop app'"));
    expect(out.indexOf("echo 'stop app'")).toBeLessThan(out.indexOf('step 2/2'));
  });

  it('parallel runs its steps together, merges their state, and undoes them all when one fails', async () => {
    const events: string[] = [];
    const { ctx } = fakeCtx();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const both = parallel<S>('stage folders ‖ restore database', [
      step('x', events, {
        run: async () => {
          await gate;
          return { n: 7 };
        },
      }),
      step('y', events, {
        run: async () => {
          release(); // x waits for y: they run at the same time
          return { trail: ['y'] };
        },
      }),
    ]);
    const s = await runPlan(ctx, [both], { trail: [] });
    expect(s).toEqual({ n: 7, trail: ['y'] });
    const failing = parallel<S>('p', [step('x', events), step('y', events, { run: fail('y broke') })]);
    events.length = 0;
    await expect(runPlan(ctx, [failing], { trail: [] })).rejects.toThrow('y broke');
    expect(events.sort()).toEqual(['run x', 'undo x', 'undo y']);
  });
});

describe('journal', () => {
  it('records each changing step with its facts and the commit point, is removed on success', async () => {
    const dir = tmp();
    const journal = openJournal(dir, 'restore');
    const events: string[] = [];
    const seen: string[][] = [];
    const plan = [
      step('stop app', events),
      step('swap database', events, {
        run: async () => {
          seen.push(fs.readFileSync(journal.file, 'utf8').trim().split('\n'));
          return { n: 1 };
        },
      }),
      step('swap folders', events, {
        run: async () => {
          seen.push(fs.readFileSync(journal.file, 'utf8').trim().split('\n'));
        },
      }),
      step('health', events, { phase: 'health' }),
    ];
    const hooks = journalHooks<S>(journal, (s) => ({ backup: 'b1', database: 'odoo', n: s.n }), 'swap database');
    await runPlan(ctx0(), plan, { trail: [] }, hooks);
    const [atSwapDb, atSwapFolders] = seen.map((lines) => lines.map((l) => JSON.parse(l)));
    expect(atSwapDb!.map((r: { step: string }) => r.step)).toEqual(['stop app', 'swap database']);
    expect(atSwapFolders!.at(-1)).toMatchObject({ op: 'restore', step: 'swap folders', committed: true, facts: { n: 1 } });
    expect(atSwapDb!.at(-1).committed).toBe(false);
    expect(fs.existsSync(journal.file)).toBe(false);
  });

  it('readUnfinished finds journals of dead processes only, skips a torn last line, and names the step', () => {
    const dir = tmp();
    const dead = openJournal(dir, 'restore', 999_999);
    dead.append('stop app', { backup: 'b1', database: 'odoo' });
    dead.append('swap folders', { backup: 'b1', database: 'odoo' }, true);
    fs.appendFileSync(dead.file, '{"op":"restore","st');
    openJournal(dir, 'restore').append('stop app', {});
    const found = readUnfinished(dir, (pid) => pid === process.pid);
    expect(found.map((u) => u.pid)).toEqual([999_999]);
    expect(found[0]!.records).toHaveLength(2);
    expect(describeUnfinished(found[0]!)).toBe(
      `restore of b1 into odoo was interrupted at 'swap folders' (what each step changed: ${found[0]!.file})`,
    );
    expect(readUnfinished(path.join(dir, 'none'))).toEqual([]);
  });
});

const ctx0 = () => fakeCtx().ctx;

describe('COMPOSE_TASKS_STOP_AFTER_STEP (test-only hook)', () => {
  it('kills the process with SIGKILL right after the named step; the journal is left behind, naming the step', async () => {
    const { spawnSync } = await import('node:child_process');
    const dir = tmp();
    const fixture = path.join(import.meta.dirname, 'fixtures/stop-after-step.ts');
    const tsx = path.join(import.meta.dirname, '../../node_modules/.bin/tsx');
    const r = spawnSync(tsx, [fixture, dir], { env: { ...process.env, COMPOSE_TASKS_STOP_AFTER_STEP: 'swap database' } });
    // tsx passes its child's SIGKILL on as exit 137 (128 + 9), or is killed the same way itself
    expect(r.signal === 'SIGKILL' || r.status === 137).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'ran'), 'utf8').trim().split('\n')).toEqual(['stop app', 'swap database']);
    const [u] = readUnfinished(dir);
    expect(u!.last.step).toBe('swap database');
    expect(describeUnfinished(u!)).toBe(`restore of b1 into odoo was interrupted at 'swap database' (what each step changed: ${u!.file})`);
  });
});

describe('takeChangeLock and unfinished journals', () => {
  it('a task that takes the change lock refuses in one line naming the interrupted change and tasks recover', async () => {
    const { takeChangeLock } = await import('../../scripts/backup/leftovers.ts');
    const dir = tmp();
    openJournal(dir, 'restore', 999_998).append('swap folders', { backup: 'b2', database: 'odoo' }, true);
    const { ctx } = fakeCtx();
    const cleanups: (() => unknown)[] = [];
    const lctx = {
      ...ctx,
      root: dir,
      env: { get: (k: string) => (k === 'BACKUP_DIR' ? dir : undefined) },
      global: { dryRun: false, yes: false },
      signal: new AbortController().signal,
      onCleanup: (fn: () => unknown) => cleanups.push(fn),
    } as unknown as TaskContext;
    const err = await takeChangeLock(lctx, 'db-import').catch((e: unknown) => e as TaskError);
    for (const fn of cleanups.reverse()) await fn();
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.refused);
    expect((err as TaskError).message).toMatch(
      /^restore of b2 into odoo was interrupted at 'swap folders' \(what each step changed: .*\): db-import refused until it is recovered$/,
    );
    expect((err as TaskError).hint).toContain('tasks recover');
  });
});

describe('doctor and unfinished journals', () => {
  it('the unfinished-change check fails naming the interrupted change, ok once it is gone', async () => {
    const { runChecks } = await import('../../scripts/tasks/doctor.ts');
    const dir = tmp();
    const { ctx } = fakeCtx();
    const dctx = { ...ctx, root: dir, env: { get: (k: string) => (k === 'BACKUP_DIR' ? dir : undefined) } } as unknown as TaskContext;
    expect((await runChecks(dctx, { only: ['unfinished-change'] }))[0]).toMatchObject({ status: 'ok' });
    const j = openJournal(dir, 'restore', 999_997);
    j.append('swap database', { backup: 'b3', database: 'odoo' });
    const [r] = await runChecks(dctx, { only: ['unfinished-change'] });
    expect(r).toMatchObject({
      status: 'fail',
      message: `restore of b3 into odoo was interrupted at 'swap database' (what each step changed: ${j.file})`,
      fix: expect.stringContaining('tasks recover'),
    });
  });
});

describe('SIGHUP', () => {
  it('is handled like SIGTERM: the task is interrupted with exit 143', async () => {
    const { abortError } = await import('../../scripts/core/runner.ts');
    const c = new AbortController();
    c.abort('SIGHUP');
    const e = abortError(c.signal);
    expect(e.exitCode).toBe(ExitCode.sigterm);
    expect(e.message).toBe('interrupted (SIGHUP)');
  });
});

describe('readOrUnknown: a read-only fact a dry run cannot read', () => {
  const engineDown = () =>
    new CommandError(
      'docker-compose exec -T db psql',
      ['docker-compose', 'exec', '-T', 'db', 'psql'],
      1,
      "docker.errors.DockerException: Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2))",
    );
  const ctxOf = (dryRun: boolean) => {
    let text = '';
    const log = createLogger({ sink: { write: (s: string) => (text += s) } });
    return { ctx: { global: { dryRun, yes: false, quiet: false }, log }, text: () => text };
  };

  it('in a dry run: the fallback, and one line saying the fact is unknown and why', async () => {
    const { ctx, text } = ctxOf(true);
    const v = await readOrUnknown(ctx, 'PostgreSQL server version', () => Promise.reject(engineDown()), 'fallback');
    expect(v).toBe('fallback');
    expect(text()).toBe('[dry-run] PostgreSQL server version: unknown (the Docker engine is not running)\n');
  });

  it('in a real run the error goes through unchanged, and in a dry run a failure that is not "cannot run" does too', async () => {
    const err = engineDown();
    const real = ctxOf(false);
    await expect(readOrUnknown(real.ctx, 'x', () => Promise.reject(err), 1)).rejects.toBe(err);
    expect(real.text()).toBe('');
    const corrupt = new TaskError('x.dump is corrupt or truncated', { hint: 'use another dump; nothing was changed' });
    await expect(readOrUnknown(ctxOf(true).ctx, 'x', () => Promise.reject(corrupt), 1)).rejects.toBe(corrupt);
    expect(await readOrUnknown(real.ctx, 'x', async () => 2, 1)).toBe(2);
  });
});
