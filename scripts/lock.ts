// One backup at a time: an flock(1) held by a small child for as long as this process lives.
//
// Why flock and not a pid file: a pid file needs "read, check the pid is alive, replace" which two runs can
// interleave (both see a dead pid, both take the lock). flock is atomic in the kernel and is released when the
// holder dies, even by SIGKILL. The holder is `flock -n FILE cat` with our pipe as its stdin: when this
// process exits for any reason the pipe closes, cat ends and the kernel drops the lock. The pid written into
// the file is only for the message a second run prints.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ExitCode, TaskError } from './errors.ts';

export interface Lock {
  release(): Promise<void>;
}

const BUSY = 75;

function holderPid(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Takes the lock at once or fails with exit 5 ("another backup is running, pid N"). */
export async function acquireLock(file: string, o: { what?: string; env?: Record<string, string> } = {}): Promise<Lock> {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  // Its own session: Ctrl-C in the terminal reaches us, not the holder, so the lock lasts until our cleanup ran.
  const child = spawn('flock', ['-n', '-E', String(BUSY), file, 'sh', '-c', 'echo locked; exec cat > /dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: o.env ? { ...process.env, ...o.env } : process.env,
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
      throw new TaskError(`another ${o.what ?? 'backup'} is running, pid ${holderPid(file)}`, {
        exitCode: ExitCode.lockHeld,
        hint: `wait for it to finish (lock: ${file})`,
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
  fs.writeFileSync(file, `${process.pid}\n`);
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
