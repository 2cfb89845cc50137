import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireLock, describeHolder, readHolder } from '../../scripts/core/lock.ts';
import { ExitCode, TaskError } from '../../scripts/core/errors.ts';
import { main } from '../../scripts/core/cli.ts';
import { config, tasks } from '../../tasks.ts';
import { serviceTasks } from '../../scripts/tasks/stack.ts';

const repo = path.resolve(import.meta.dirname, '../..');

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-lock-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

describe('acquireLock', () => {
  it('a second holder fails with exit 5 naming the first task, its pid and since when; free again after release', async () => {
    const file = path.join(tmp(), '.lock');
    const first = await acquireLock(file, { what: 'restore', env });
    expect(readHolder(file)).toMatchObject({ task: 'restore', pid: String(process.pid) });
    const err = await acquireLock(file, { what: 'db-import', env }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.lockHeld);
    expect((err as TaskError).message).toMatch(
      new RegExp(
        `^cannot run db-import now: restore is running \\(pid ${process.pid}, since \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\)$`,
      ),
    );
    await first.release();
    const again = await acquireLock(file, { what: 'db-import', env });
    await again.release();
  });

  it("starts flock with the runner's environment, not the process's: a PATH without flock is a missing prerequisite", async () => {
    const file = path.join(tmp(), '.lock');
    const empty = tmp();
    const err = await acquireLock(file, { what: 'backup', env: { PATH: empty } }).catch((e: unknown) => e);
    expect((err as TaskError).exitCode).toBe(ExitCode.prerequisite);
    expect((err as TaskError).hint).toBe('install flock (util-linux)');
    // And a flock found only on the runner's PATH is the one that runs.
    const bin = tmp();
    const mark = path.join(bin, 'ran');
    fs.writeFileSync(path.join(bin, 'flock'), `#!/bin/sh\ntouch '${mark}'\nexec /usr/bin/flock "$@"\n`, { mode: 0o755 });
    const lock = await acquireLock(file, { what: 'backup', env: { PATH: `${bin}:/usr/bin:/bin` } });
    await lock.release();
    expect(fs.existsSync(mark)).toBe(true);
  });

  it('reads the bare pid older versions wrote', () => {
    const file = path.join(tmp(), '.lock');
    fs.writeFileSync(file, '4242\n');
    expect(describeHolder(readHolder(file))).toBe('another task is running (pid 4242)');
  });
});

describe('lockChanges through a task', () => {
  it("prune's lock runs the flock the task's environment names (PATH as given to the CLI), and writes the task into the lock", async () => {
    const root = tmp();
    fs.copyFileSync(path.join(repo, '.env.template'), path.join(root, '.env.template'));
    fs.writeFileSync(path.join(root, '.env'), 'POSTGRES_PASSWORD=unused\n', { mode: 0o600 });
    fs.mkdirSync(path.join(root, 'backup'));
    const bin = tmp();
    const mark = path.join(bin, 'ran');
    fs.writeFileSync(path.join(bin, 'flock'), `#!/bin/sh\necho "$@" > '${mark}'\nexec /usr/bin/flock "$@"\n`, { mode: 0o755 });
    let err = '';
    const code = await main({
      argv: ['prune'],
      env: { PATH: `${bin}:${process.env.PATH}`, HOME: process.env.HOME ?? '/root', APP_ENV: 'development', COMPOSE_PROJECT_NAME: 'lk' },
      root,
      tasks,
      serviceTasks,
      config,
      stdout: { write: () => true, isTTY: false },
      stderr: {
        write: (s: string) => {
          err += s;
          return true;
        },
        isTTY: false,
      },
      stdinIsTTY: false,
    });
    expect(code, err).toBe(0);
    expect(fs.readFileSync(mark, 'utf8')).toContain(path.join(root, 'backup', '.lock'));
  });
});
