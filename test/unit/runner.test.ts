import { isAlive } from '../../scripts/core/journal.ts';
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRunner, displayCommand, type Cmd, type Exec } from '../../scripts/core/runner.ts';
import { createLogger } from '../../scripts/core/log.ts';
import { CommandError, ExitCode, TaskError } from '../../scripts/core/errors.ts';
import { sink } from '../harness/sink.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'runner-'));

describe('runner', () => {
  it('echoes each command to the log before running it, with secrets masked', async () => {
    const err = sink();
    const log = createLogger({ sink: err, secrets: ['hunter2-secret'] });
    const r = createRunner({ log, env: { PATH: process.env.PATH }, cwd: process.cwd() });
    const res = await r.run({ argv: ['sh', '-c', 'echo ok', 'sh', 'postgres://app:hunter2-secret@db:5432/x'], stdout: 'capture' });
    expect(res.stdout).toBe('ok\n');
    expect(err.text).toContain("$ sh -c 'echo ok' sh postgres://app:***@db:5432/x");
    expect(err.text).not.toContain('hunter2-secret');
  });

  it('in dry-run prints the command and runs nothing', async () => {
    const dir = tmp();
    const err = sink();
    const r = createRunner({ log: createLogger({ sink: err }), dryRun: true, env: { PATH: process.env.PATH }, cwd: dir });
    const res = await r.run({ argv: ['touch', path.join(dir, 'created')] });
    expect(res).toMatchObject({ code: 0, dryRun: true, stdout: '' });
    expect(fs.existsSync(path.join(dir, 'created'))).toBe(false);
    expect(err.text).toContain(`[dry-run] $ touch ${path.join(dir, 'created')}`);
  });

  it('streams stdout to a file created with mode 0600', async () => {
    const dir = tmp();
    const file = path.join(dir, 'out.bin');
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: dir });
    await r.run({ argv: ['head', '-c', '1048576', '/dev/zero'], stdout: { file } });
    expect(fs.statSync(file).size).toBe(1048576);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('feeds a child a file another command is still writing, to its very end once that command is done', async () => {
    const dir = tmp();
    const growing = path.join(dir, 'growing.bin');
    const copy = path.join(dir, 'copy.bin');
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: dir });
    // The writer: 3 MB in three steps, 150 ms apart (the reader catches up and waits at the end each time).
    const writer = r.run({
      argv: ['sh', '-c', 'for i in 1 2 3; do head -c 1048576 /dev/urandom; sleep 0.15; done'],
      stdout: { file: growing },
    });
    const reader = r.run({ argv: ['cat'], stdin: { file: growing, until: writer }, stdout: { file: copy } });
    await writer;
    await reader;
    expect(fs.statSync(copy).size).toBe(3 * 1048576);
    expect(fs.readFileSync(copy).equals(fs.readFileSync(growing))).toBe(true);
  });

  it('a child that stops reading its followed input early is reported by its exit code, not a crash (EPIPE)', async () => {
    const dir = tmp();
    const big = path.join(dir, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(8 << 20, 1));
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: dir });
    await expect(
      r.run({ argv: ['sh', '-c', 'head -c 10 > /dev/null; exit 3'], stdin: { file: big, until: Promise.resolve() }, stderr: 'capture' }),
    ).rejects.toMatchObject({ exitCode: 3 });
  });

  it('a followed file that never appears (its writer failed first) ends the child input instead of crashing', async () => {
    const dir = tmp();
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: dir });
    const failed = Promise.reject(new Error('pg_dump: not found'));
    failed.catch(() => undefined);
    const res = await r.run({
      argv: ['sh', '-c', 'n=$(wc -c); echo "read $n"'],
      stdin: { file: path.join(dir, 'never'), until: failed },
      stdout: 'capture',
    });
    expect(res.stdout.trim()).toBe('read 0');
  });

  it('passes a child exit code through and names its last stderr line', async () => {
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: process.cwd() });
    const err = await r.run({ argv: ['sh', '-c', 'echo first >&2; echo "disk full" >&2; exit 3'] }).catch((e) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect(err.exitCode).toBe(3);
    expect(err.message).toBe('sh exited with code 3: disk full');
  });

  it('accepts the exit codes a command declares as success (tar 1 = file changed)', async () => {
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: process.cwd() });
    await expect(r.run({ argv: ['sh', '-c', 'exit 1'], okCodes: [0, 1] })).resolves.toMatchObject({ code: 1 });
    await expect(r.run({ argv: ['sh', '-c', 'exit 2'], okCodes: [0, 1] })).rejects.toMatchObject({ exitCode: 2 });
  });

  it('gives secrets to the child through the environment, never on argv', async () => {
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: process.cwd() });
    const res = await r.run({
      argv: ['sh', '-c', 'printf %s "$PGPASSWORD"; cat /proc/$$/cmdline | tr "\\0" " "'],
      env: { PGPASSWORD: 'pw-in-env-only' },
      stdout: 'capture',
    });
    expect(res.stdout.startsWith('pw-in-env-only')).toBe(true);
    expect(res.stdout.slice('pw-in-env-only'.length)).not.toContain('pw-in-env-only');
  });

  it('reports a missing program as a prerequisite with its name', async () => {
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: '/nonexistent' }, cwd: process.cwd() });
    const err = await r.run({ argv: ['no-such-tool-xyz', '--version'] }).catch((e) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect(err.exitCode).toBe(ExitCode.prerequisite);
    expect(err.message).toContain('no-such-tool-xyz');
  });

  it('stops the child on SIGTERM and reports exit 143', async () => {
    const ac = new AbortController();
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: process.cwd(), signal: ac.signal });
    const started = Date.now();
    setTimeout(() => ac.abort('SIGTERM'), 200);
    const err = await r.run({ argv: ['sleep', '30'] }).catch((e) => e);
    expect(err.exitCode).toBe(ExitCode.sigterm);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('hands every command as data to an injected launcher (how tests observe commands)', async () => {
    const seen: Cmd[] = [];
    const exec: Exec = async (cmd) => {
      seen.push(cmd);
      return { code: 0, stdout: 'fake', stderr: '' };
    };
    const r = createRunner({ log: createLogger({ sink: sink() }), env: {}, cwd: '/x', exec });
    const res = await r.run({ argv: ['docker', 'compose', 'ps'], stdout: 'capture' });
    expect(res.stdout).toBe('fake');
    expect(seen).toEqual([{ argv: ['docker', 'compose', 'ps'], stdout: 'capture', cwd: '/x' }]);
  });

  it('quotes arguments for display the way a shell would read them', () => {
    expect(displayCommand({ argv: ['psql', '-c', "select 'a b'", '--x=1'], stdin: { file: '/tmp/a b' }, stdout: { file: '/tmp/o' } })).toBe(
      `psql -c 'select '\\''a b'\\''' --x=1 < '/tmp/a b' > /tmp/o`,
    );
  });
});

describe('time bounds', () => {
  it('a child that ignores SIGTERM is killed (SIGKILL) past its bound, and the one-off container removed by name', async () => {
    const dir = tmp();
    const pidFile = path.join(dir, 'pid');
    const dockerLog = path.join(dir, 'docker.log');
    // A docker fixture first on PATH records what the runner asks of it.
    fs.writeFileSync(path.join(dir, 'docker'), `#!/bin/sh\necho "$*" >> "${dockerLog}"\n`, { mode: 0o755 });
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: `${dir}:${process.env.PATH}` }, cwd: dir });
    const t0 = Date.now();
    const run = r.run({
      argv: ['sh', '-c', `trap '' TERM; echo $$ > "${pidFile}"; while :; do sleep 1; done`],
      timeoutMs: 500,
      killAfterMs: 1000,
      container: 'ct-oneoff-x',
      manual: 'docker compose run --rm odoo bash -c "swap back"',
    });
    const err = await run.then(
      () => undefined,
      (e: unknown) => e as TaskError,
    );
    expect(err).toBeInstanceOf(TaskError);
    expect(err!.message).toBe('sh did not finish within 0.5 s and was stopped');
    expect(err!.hint).toBe('finish it by hand: docker compose run --rm odoo bash -c "swap back"');
    expect(Date.now() - t0).toBeLessThan(10_000);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    await new Promise((res) => setTimeout(res, 200));
    expect(isAlive(pid)).toBe(false);
    expect(fs.readFileSync(dockerLog, 'utf8').trim()).toBe('rm -f ct-oneoff-x');
  });

  it('a stream that stops writing is stopped by its stall bound, however long it was allowed to run', async () => {
    const dir = tmp();
    const dockerLog = path.join(dir, 'docker.log');
    fs.writeFileSync(path.join(dir, 'docker'), `#!/bin/sh\necho "$*" >> "${dockerLog}"\n`, { mode: 0o755 });
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: `${dir}:${process.env.PATH}` }, cwd: dir });
    const out = path.join(dir, 'part.tar');
    const t0 = Date.now();
    const err = await r
      .run({
        argv: ['sh', '-c', 'printf x; sleep 0.3; printf y; sleep 60'],
        stdout: { file: out },
        stallMs: 800,
        container: 'odoo-backup-filestore-1',
      })
      .then(
        () => undefined,
        (e: unknown) => e as TaskError,
      );
    expect(err).toBeInstanceOf(TaskError);
    expect(err!.message).toBe('sh produced no output for 0.8 s and was stopped');
    expect(err!.hint).toMatch(/the engine or the link to it stalled/);
    expect(fs.readFileSync(out, 'utf8')).toBe('xy');
    // Stopped about 0.8 s after the last byte (0.3 s in), not after the 60 s sleep.
    expect(Date.now() - t0).toBeLessThan(10_000);
    await new Promise((res) => setTimeout(res, 200));
    expect(fs.readFileSync(dockerLog, 'utf8')).toBe('rm -f odoo-backup-filestore-1\n');
  });

  it('a stream that keeps writing outlives its stall bound', async () => {
    const dir = tmp();
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: dir });
    const out = path.join(dir, 'part.tar');
    await r.run({ argv: ['sh', '-c', 'for i in 1 2 3 4 5 6; do printf x; sleep 0.2; done'], stdout: { file: out }, stallMs: 600 });
    expect(fs.readFileSync(out, 'utf8')).toBe('xxxxxx');
  });

  it('a command that ends in time is not touched', async () => {
    const r = createRunner({ log: createLogger({ sink: sink() }), env: { PATH: process.env.PATH }, cwd: process.cwd() });
    const res = await r.run({ argv: ['sh', '-c', 'sleep 0.2; echo done'], timeoutMs: 5000, stdout: 'capture' });
    expect(res.stdout).toBe('done\n');
  });
});
