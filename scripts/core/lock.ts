// One lock for everything that changes a database or the backup folder (backup, restore, prune, db-import,
// reset-db, seed): an flock(1) held by a small child for as long as this process lives.
//
// Why flock and not a pid file: a pid file needs "read, check the pid is alive, replace" which two runs can
// interleave (both see a dead pid, both take the lock). flock is atomic in the kernel and is released when the
// holder dies, even by SIGKILL. The holder is `flock -n FILE cat` with our pipe as its stdin: when this
// process exits for any reason the pipe closes, cat ends and the kernel drops the lock. The pid written into
// the file (task, pid, since when, as JSON) is only for the message a second run prints.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TaskContext } from './define.ts';
import { ExitCode, TaskError } from './errors.ts';

export interface Lock {
  release(): Promise<void>;
}

const BUSY = 75;

/** Who holds the lock, as written into the lock file by the holder. */
export interface LockHolder {
  task: string;
  pid: string;
  since?: string;
}

/** The holder recorded in a lock file: JSON `{task, pid, since}`, or a bare pid (written by older versions). */
export function readHolder(file: string): LockHolder {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8').trim();
  } catch {
    /* gone with its folder */
  }
  try {
    const j = JSON.parse(text) as { task?: unknown; pid?: unknown; since?: unknown };
    if (j && typeof j === 'object')
      return { task: String(j.task ?? 'another task'), pid: String(j.pid ?? 'unknown'), ...(j.since ? { since: String(j.since) } : {}) };
  } catch {
    /* not JSON */
  }
  return { task: 'another task', pid: /^\d+$/.test(text) ? text : 'unknown' };
}

/** "restore is running (pid 123, since 2026-11-22T05:59:01Z)" */
export const describeHolder = (h: LockHolder) => `${h.task} is running (pid ${h.pid}${h.since ? `, since ${h.since}` : ''})`;

/**
 * Takes the lock at once or fails with exit 5 naming the holder ("restore is running (pid N, since …)"). `what` is
 * this task's name, recorded for the message another one prints; `env` is the environment of the flock child
 * (the runner's: PATH from the env files decides which flock runs).
 */
export async function acquireLock(file: string, o: { what: string; env: Readonly<Record<string, string>> }): Promise<Lock> {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Its own session: Ctrl-C in the terminal reaches us, not the holder, so the lock lasts until our cleanup ran.
  const child = spawn('flock', ['-n', '-E', String(BUSY), file, 'sh', '-c', 'echo locked; exec cat > /dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: { ...o.env },
  });
  child.stdin.on('error', () => undefined);
  const outcome = await new Promise<'locked' | number | Error>((resolve) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('locked')) resolve('locked');
    });
    child.on('error', (err) => resolve(err));
    child.on('exit', (code) => resolve(code ?? 1));
  });
  if (outcome instanceof Error) {
    throw new TaskError(`cannot take the lock ${file}: ${outcome.message}`, {
      exitCode: ExitCode.prerequisite,
      hint: 'install flock (util-linux)',
    });
  }
  if (outcome !== 'locked') {
    if (outcome === BUSY) {
      throw new TaskError(`cannot run ${o.what} now: ${describeHolder(readHolder(file))}`, {
        exitCode: ExitCode.lockHeld,
        hint: `wait for it to finish, then run ${o.what} again (lock: ${file})`,
      });
    }
    throw new TaskError(`cannot take the lock ${file}: flock exited with code ${outcome}`, { exitCode: ExitCode.lockHeld });
  }
  child.stdout.removeAllListeners('data');
  child.stdout.resume();
  child.stderr.resume();
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  fs.writeFileSync(
    file,
    `${JSON.stringify({ task: o.what, pid: process.pid, since: new Date().toISOString().replace(/\.\d+Z$/, 'Z') })}\n`,
  );
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      try {
        fs.writeFileSync(file, '');
      } catch {
        /* the lock file may be gone with its folder */
      }
      const exited = new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) r();
        else child.once('exit', () => r());
      });
      child.ref(); // keep the event loop alive until the holder is gone
      child.stdin.end();
      await Promise.race([exited, new Promise<void>((r) => setTimeout(r, 2000).unref())]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Locks taken by one invocation (keyed by its abort signal): a task run by another (reset-db → seed) does not wait for itself. */
const heldBy = new WeakMap<AbortSignal, Set<string>>();

/**
 * Takes the change lock of this project for the rest of the invocation (released by its cleanup), or fails with exit
 * 5 naming what holds it. Not in a dry run. True when this call took it (false: held already, or a dry run). Tasks call
 * takeChangeLock (scripts/backup/leftovers.ts), which also removes what killed runs left.
 */
export async function lockChanges(
  ctx: Pick<TaskContext, 'root' | 'env' | 'runner' | 'signal' | 'onCleanup' | 'global'>,
  what: string,
): Promise<boolean> {
  if (ctx.global.dryRun) return false;
  const { backupDir } = await import('../backup/store.ts');
  const dir = backupDir(ctx);
  const file = path.join(dir, '.lock');
  const held = heldBy.get(ctx.signal) ?? new Set<string>();
  if (held.has(file)) return false;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = await acquireLock(file, { what, env: ctx.runner.env });
  held.add(file);
  heldBy.set(ctx.signal, held);
  ctx.onCleanup(async () => {
    held.delete(file);
    await lock.release();
  });
  return true;
}
