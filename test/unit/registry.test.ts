import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../../scripts/core/cli.ts';
import { defineConfig, defineTask, type AnyTask } from '../../scripts/core/define.ts';
import { ExitCode } from '../../scripts/core/errors.ts';

const config = defineConfig({ composeFiles: [], devComposeFiles: [], seedsDir: 'seeds', backupParts: [], appServices: [] });

function sink(isTTY = false) {
  let text = '';
  return {
    write: (s: string) => {
      text += s;
      return true;
    },
    get text() {
      return text;
    },
    isTTY,
  };
}

async function run(
  tasks: AnyTask[],
  argv: string[],
  o: { env?: Record<string, string>; files?: Record<string, string>; tty?: boolean; signal?: AbortSignal } = {},
) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-'));
  for (const [f, t] of Object.entries(o.files ?? {})) fs.writeFileSync(path.join(root, f), t, { mode: 0o600 });
  const stdout = sink();
  const stderr = sink();
  const code = await main({
    argv,
    env: { PATH: process.env.PATH, ...o.env },
    root,
    tasks,
    config,
    stdout,
    stderr,
    stdinIsTTY: Boolean(o.tty),
    signal: o.signal,
  });
  return { code, stdout: stdout.text, stderr: stderr.text, root };
}

describe('the task registry', () => {
  it('runs a dependency once per invocation even when several tasks need it', async () => {
    const ran: string[] = [];
    const tasks = [
      defineTask({
        name: 'build',
        description: 'b',
        group: 'stack',
        async run() {
          ran.push('build');
        },
      }),
      defineTask({
        name: 'api',
        description: 'a',
        group: 'stack',
        deps: ['build'],
        async run() {
          ran.push('api');
        },
      }),
      defineTask({
        name: 'web',
        description: 'w',
        group: 'stack',
        deps: ['build'],
        async run() {
          ran.push('web');
        },
      }),
      defineTask({
        name: 'all',
        description: 'all',
        group: 'stack',
        deps: ['api', 'web'],
        async run() {
          ran.push('all');
        },
      }),
    ];
    expect((await run(tasks, ['all'])).code).toBe(0);
    expect(ran).toEqual(['build', 'api', 'web', 'all']);
  });

  it('types arguments and options from the definition', async () => {
    let seen: unknown;
    const t = defineTask({
      name: 'greet',
      description: 'g',
      group: 'custom',
      args: { who: { description: 'who', required: true }, rest: { description: 'more', variadic: true } },
      options: { loud: { type: 'boolean', short: 'l', description: 'loud' }, times: { type: 'string', description: 'n', default: '1' } },
      async run(ctx) {
        const who: string = ctx.args.who;
        const rest: string[] = ctx.args.rest;
        const loud: boolean = ctx.opts.loud;
        const times: string = ctx.opts.times;
        seen = { who, rest, loud, times };
      },
    });
    expect((await run([t], ['greet', 'ana', 'b', 'c', '-l', '--times', '3'])).code).toBe(0);
    expect(seen).toEqual({ who: 'ana', rest: ['b', 'c'], loud: true, times: '3' });
  });

  it('gives a --no-x option to the task as noX=true', async () => {
    const seen: unknown[] = [];
    const t = defineTask({
      name: 'setup',
      description: 's',
      group: 'setup',
      options: { noBackup: { type: 'boolean', description: 'skip' } },
      async run(ctx) {
        seen.push({ ...ctx.opts });
      },
    });
    await run([t], ['setup', '--no-backup']);
    await run([t], ['setup']);
    expect(seen).toEqual([{ noBackup: true }, { noBackup: false }]);
  });

  it('exits 2 on a missing argument or an unknown option, running nothing', async () => {
    let ran = false;
    const t = defineTask({
      name: 'imp',
      description: 'i',
      group: 'database',
      args: { file: { description: 'f', required: true } },
      async run() {
        ran = true;
      },
    });
    const missing = await run([t], ['imp']);
    expect(missing.code).toBe(ExitCode.usage);
    expect(missing.stderr).toContain("missing required argument 'file'");
    expect((await run([t], ['imp', 'x', '--nope'])).code).toBe(ExitCode.usage);
    expect(ran).toBe(false);
  });

  it('passes a child process exit code through', async () => {
    const t = defineTask({
      name: 'fail',
      description: 'f',
      group: 'custom',
      async run(ctx) {
        await ctx.runner.run({ argv: ['sh', '-c', 'echo "broken pipe" >&2; exit 42'] });
      },
    });
    const r = await run([t], ['fail']);
    expect(r.code).toBe(42);
    expect(r.stderr).toContain('error: sh exited with code 42: broken pipe');
  });

  it('refuses a confirmation with no terminal (exit 3) before doing anything; --yes confirms', async () => {
    let dropped = false;
    const t = defineTask({
      name: 'drop',
      description: 'd',
      group: 'database',
      async run(ctx) {
        await ctx.confirm({ message: 'Drop everything' });
        dropped = true;
      },
    });
    const r = await run([t], ['drop']);
    expect(r.code).toBe(ExitCode.refused);
    expect(r.stderr).toContain('pass --yes to confirm without a terminal');
    expect(dropped).toBe(false);
    expect((await run([t], ['drop', '--yes'])).code).toBe(0);
    expect(dropped).toBe(true);
  });

  it('validates the environment against the template and reports every problem, naming the file', async () => {
    const t = defineTask({ name: 'needs', description: 'n', group: 'custom', async run() {} });
    const r = await run([t], ['needs'], {
      files: { '.env.template': '# p\n# @secret\nPOSTGRES_PASSWORD=\n# n\n# @int\nKEEP=3\n', '.env': 'KEEP=x\n' },
    });
    expect(r.code).toBe(ExitCode.invalidEnv);
    expect(r.stderr).toContain('POSTGRES_PASSWORD is missing; KEEP must be a whole number');
    expect(r.stderr).toContain('fix .env');
  });

  it('warns when .env is readable by other users', async () => {
    const t = defineTask({ name: 'x', description: 'x', group: 'custom', async run() {} });
    const r = await run([t], ['x'], { files: { '.env': 'A=1\n' } });
    expect(r.stderr).toBe('');
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-'));
    fs.writeFileSync(path.join(root, '.env'), 'A=1\n', { mode: 0o644 });
    const err = sink();
    await main({ argv: ['x'], env: {}, root, tasks: [t], config, stdout: sink(), stderr: err, stdinIsTTY: false });
    expect(err.text).toContain('warning: .env is readable by other users and holds passwords: chmod 600 .env');
  });

  it('runs cleanups and exits 130 when interrupted', async () => {
    const ac = new AbortController();
    let cleaned = false;
    const t = defineTask({
      name: 'long',
      description: 'l',
      group: 'custom',
      async run(ctx) {
        ctx.onCleanup(() => {
          cleaned = true;
        });
        setTimeout(() => ac.abort('SIGINT'), 100);
        await ctx.runner.run({ argv: ['sleep', '30'] });
      },
    });
    const r = await run([t], ['long'], { signal: ac.signal });
    expect(r.code).toBe(ExitCode.sigint);
    expect(cleaned).toBe(true);
  });

  it('prints every command in dry-run and runs none', async () => {
    const t = defineTask({
      name: 'mk',
      description: 'm',
      group: 'custom',
      async run(ctx) {
        await ctx.runner.run({ argv: ['touch', path.join(ctx.root, 'made')] });
      },
    });
    const r = await run([t], ['-n', 'mk']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`[dry-run] $ touch ${path.join(r.root, 'made')}`);
    expect(fs.existsSync(path.join(r.root, 'made'))).toBe(false);
  });

  it('lists tasks grouped, and shows a task help with its example', async () => {
    const tasks = [
      defineTask({ name: 'dev', description: 'Start it', group: 'stack', async run() {} }),
      defineTask({
        name: 'backup',
        description: 'Back it up',
        group: 'backups',
        example: 'tasks backup --only db',
        options: { only: { type: 'string', description: 'parts' } },
        async run() {},
      }),
    ];
    const list = await run(tasks, []);
    expect(list.stdout).toMatch(/stack:\n {2}dev +Start it\n\nbackups:\n {2}backup +Back it up/);
    const help = await run(tasks, ['help', 'backup']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--only <value>');
    expect(help.stdout).toContain('Example:\n  $ tasks backup --only db');
    const typo = await run(tasks, ['bakup']);
    expect(typo.code).toBe(ExitCode.usage);
    expect(typo.stderr).toContain('Did you mean backup?');
  });
});
