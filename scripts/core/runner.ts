// The one injectable runner: every external command is built as data, echoed (masked) and run here, or not in dry-run.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { CommandError, ExitCode, TaskError } from './errors.ts';
import type { Logger } from './log.ts';

/** An external command as plain data. Building one never starts a process. */
export interface Cmd {
  argv: readonly string[];
  /** Added to the child's environment (secrets such as PGPASSWORD travel here, never on argv). */
  env?: Readonly<Record<string, string | undefined>>;
  cwd?: string;
  /** `until`: the file is still being written by another command; it is read as it grows, to its end once `until` settles. */
  stdin?: 'inherit' | 'ignore' | { file: string; until?: Promise<unknown> } | { text: string };
  /** 'capture' buffers in memory: use it for small answers only; data goes to { file }. */
  stdout?: 'inherit' | 'capture' | 'ignore' | { file: string; mode?: number; append?: boolean };
  stderr?: 'inherit' | 'capture' | 'ignore';
  /** Exit codes that count as success (tar's 1 "file changed as we read it" is one). Default [0]. */
  okCodes?: readonly number[];
  /**
   * A time bound: past it the command gets SIGTERM, then SIGKILL `killAfterMs` later (default 5 s: an uninterruptible
   * child does not outlive it), and fails with "did not finish within …".
   */
  timeoutMs?: number;
  killAfterMs?: number;
  /** The name of the one-off container this command starts: on a timeout it is removed too (`docker rm -f`). */
  container?: string;
  /** On a timeout, what finishes the step by hand (printed as the hint). */
  manual?: string;
  /**
   * A stall bound for streaming commands (a dump, a tar of a folder: hours are fine, silence is not): when the
   * command's output to { file } has not grown for this long, it is stopped as a timeout is ("produced no output for …").
   */
  stallMs?: number;
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** True when the command was only printed (dry-run): stdout is empty then. */
  dryRun: boolean;
}

/** The process launcher; the default uses zx. Tests may pass their own (see test/unit/runner.test.ts). */
export type Exec = (
  cmd: Cmd,
  env: Record<string, string>,
  signal: AbortSignal | undefined,
) => Promise<{ code: number; stdout: string; stderr: string; signal?: string | null; timedOut?: boolean; stalled?: boolean }>;

export interface Runner {
  run(cmd: Cmd): Promise<Result>;
  /** The masked, shell-quoted form printed before a command runs. */
  display(cmd: Cmd): string;
  readonly dryRun: boolean;
  readonly log: Logger;
  /** The environment every child gets (real environment + env files), before cmd.env. */
  readonly env: Readonly<Record<string, string>>;
  readonly signal: AbortSignal | undefined;
  /** The launcher this runner uses (an injected one in tests): a runner derived from this one keeps it. */
  readonly exec?: Exec;
}

export interface RunnerOptions {
  log: Logger;
  dryRun?: boolean;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  signal?: AbortSignal;
  exec?: Exec;
}

const SAFE = /^[\w@%+=:,./-]+$/;
/** POSIX shell quoting for display (the same rules zx applies when it runs the command). */
export function shellQuote(arg: string): string {
  if (arg === '') return "''";
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function displayCommand(cmd: Cmd): string {
  let s = cmd.argv.map(shellQuote).join(' ');
  if (typeof cmd.stdin === 'object' && 'file' in cmd.stdin) s += ` < ${shellQuote(cmd.stdin.file)}`;
  if (typeof cmd.stdout === 'object') s += ` ${cmd.stdout.append ? '>>' : '>'} ${shellQuote(cmd.stdout.file)}`;
  return s;
}

function cleanEnv(...layers: Array<Readonly<Record<string, string | undefined>> | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const layer of layers) {
    if (!layer) continue;
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) delete out[k];
      else out[k] = v;
    }
  }
  return out;
}

/** Default launcher: zx's `$`, options per call, output streamed to files through descriptors (never buffered). */
export const zxExec: Exec = async (cmd, env, signal) => {
  const { $ } = await import('zx/core');
  const fds: number[] = [];
  try {
    let stdin: 'inherit' | 'ignore' | 'pipe' | number = 'ignore';
    let input: string | Readable | undefined;
    if (cmd.stdin === 'inherit') stdin = 'inherit';
    else if (typeof cmd.stdin === 'object' && 'file' in cmd.stdin && cmd.stdin.until) {
      stdin = 'pipe';
      input = followFile(cmd.stdin.file, cmd.stdin.until, signal);
    } else if (typeof cmd.stdin === 'object' && 'file' in cmd.stdin) {
      stdin = fs.openSync(cmd.stdin.file, 'r');
      fds.push(stdin);
    } else if (typeof cmd.stdin === 'object') {
      stdin = 'pipe';
      input = cmd.stdin.text;
    }
    let stdout: 'inherit' | 'ignore' | 'pipe' | number = 'inherit';
    if (cmd.stdout === 'capture') stdout = 'pipe';
    else if (cmd.stdout === 'ignore') stdout = 'ignore';
    else if (typeof cmd.stdout === 'object') {
      stdout = fs.openSync(cmd.stdout.file, cmd.stdout.append ? 'a' : 'w', cmd.stdout.mode ?? 0o600);
      fds.push(stdout);
    }
    const stderr = cmd.stderr === 'inherit' ? 'inherit' : cmd.stderr === 'ignore' ? 'ignore' : 'pipe';
    const [prog, ...args] = cmd.argv;
    const p = $({
      cwd: cmd.cwd,
      env,
      stdio: [stdin, stdout, stderr],
      input,
      nothrow: true,
      quiet: true,
      verbose: false,
      signal,
    })`${prog} ${args}`;
    // The time bound is ours, not zx's (its timeout only sends SIGTERM): SIGTERM, then SIGKILL, and the one-off
    // container, which outlives a killed compose client, is removed by name.
    let timedOut = false;
    let stalled = false;
    const timers: NodeJS.Timeout[] = [];
    const stop = () => {
      p.kill('SIGTERM').catch(() => undefined);
      timers.push(setTimeout(() => p.kill('SIGKILL').catch(() => undefined), cmd.killAfterMs ?? 5000));
      if (cmd.container) {
        spawn('docker', ['rm', '-f', cmd.container], { env, stdio: 'ignore' }).on('error', () => undefined);
      }
    };
    if (cmd.timeoutMs)
      timers.push(
        setTimeout(() => {
          timedOut = true;
          stop();
        }, cmd.timeoutMs),
      );
    if (cmd.stallMs && typeof stdout === 'number') {
      const fd = stdout;
      const stallMs = cmd.stallMs;
      let size = -1;
      let since = Date.now();
      const poll = setInterval(
        () => {
          const now = fs.fstatSync(fd).size;
          if (now !== size) [size, since] = [now, Date.now()];
          else if (!stalled && Date.now() - since >= stallMs) {
            stalled = true;
            clearInterval(poll);
            stop();
          }
        },
        Math.min(1000, Math.max(50, stallMs / 4)),
      );
      timers.push(poll);
    }
    // A child that exits before reading all its input (a failing pg_restore) must not crash us with EPIPE: its exit code tells.
    p.child?.stdin?.on('error', () => undefined);
    // A followed file that cannot be read ends the child's input (it then fails on its own), rather than crashing us.
    if (input instanceof Readable) input.on('error', () => p.child?.stdin?.destroy());
    const r = await p.finally(() => {
      for (const t of timers) clearTimeout(t);
    });
    return {
      code: r.exitCode ?? (r.signal ? 128 + signalNumber(r.signal) : 1),
      stdout: r.stdout,
      stderr: r.stderr,
      signal: r.signal,
      timedOut,
      stalled,
    };
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
};

/**
 * A file another command is still writing, as a stream: read as it grows (polled every 25 ms at its end), then to
 * its end once `until` settles. Never holds more than one 1 MB chunk.
 */
export function followFile(file: string, until: Promise<unknown>, signal?: AbortSignal): Readable {
  let settled = false;
  until.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  const pause = () => new Promise((r) => setTimeout(r, 25));
  async function* chunks(): AsyncGenerator<Buffer> {
    let fh: fs.promises.FileHandle | undefined;
    while (!fh) {
      try {
        fh = await fs.promises.open(file, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || settled) throw err;
        await pause();
      }
    }
    try {
      let pos = 0;
      // A fresh buffer only once the last one was handed on: polling an idle end reuses it.
      let buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        if (signal?.aborted) return;
        const last = settled; // whatever was written before it settled is read below
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead > 0) {
          pos += bytesRead;
          yield buf.subarray(0, bytesRead);
          buf = Buffer.allocUnsafe(1 << 20);
        } else if (last) {
          return;
        } else {
          await pause();
        }
      }
    } finally {
      await fh.close();
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}

const formatSeconds = (ms: number) => (ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 100) / 10} s`);

function signalNumber(sig: string): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGPIPE: 13 } as Record<string, number>)[sig] ?? 1;
}

export function createRunner(opts: RunnerOptions): Runner {
  const env = cleanEnv(opts.env);
  const exec = opts.exec ?? zxExec;
  const dryRun = Boolean(opts.dryRun);
  const display = (cmd: Cmd) => opts.log.mask(displayCommand(cmd));
  return {
    dryRun,
    log: opts.log,
    env,
    signal: opts.signal,
    exec,
    display,
    async run(cmd) {
      opts.log.emit({ kind: 'cmd', display: displayCommand(cmd), dryRun });
      if (dryRun) return { code: 0, stdout: '', stderr: '', dryRun: true };
      if (opts.signal?.aborted) throw abortError(opts.signal);
      const childEnv = cleanEnv(env, cmd.env);
      let r: Awaited<ReturnType<Exec>>;
      const t0 = Date.now();
      try {
        r = await exec({ ...cmd, cwd: cmd.cwd ?? opts.cwd }, childEnv, opts.signal);
      } catch (err) {
        if (opts.signal?.aborted) throw abortError(opts.signal);
        const e = err as NodeJS.ErrnoException;
        throw new TaskError(`cannot run ${cmd.argv[0]}: ${e.message}`, { exitCode: ExitCode.prerequisite, cause: err });
      }
      if (opts.signal?.aborted) throw abortError(opts.signal);
      // Stopped by its time bound (the launcher says so; another launcher's kill past the bound counts too): say so,
      // not "exit 143". A hung rollback step says how to finish it by hand.
      const overdue = cmd.timeoutMs !== undefined && Boolean(r.signal) && Date.now() - t0 >= cmd.timeoutMs;
      if (r.timedOut || overdue)
        throw new TaskError(`${cmd.argv[0]} did not finish within ${formatSeconds(cmd.timeoutMs!)} and was stopped`, {
          exitCode: ExitCode.failure,
          hint: cmd.manual
            ? `finish it by hand: ${opts.log.mask(cmd.manual)}`
            : `command: ${display(cmd)}; on a remote engine, check the connection to its host`,
        });
      if (r.stalled)
        throw new TaskError(`${cmd.argv[0]} produced no output for ${formatSeconds(cmd.stallMs!)} and was stopped`, {
          exitCode: ExitCode.failure,
          hint: `the engine or the link to it stalled (on a remote engine, check the SSH connection); command: ${display(cmd)}`,
        });
      const ok = cmd.okCodes ?? [0];
      if (r.code === 127 && /command not found|No such file/.test(r.stderr)) {
        throw new TaskError(`${cmd.argv[0]}: command not found`, {
          exitCode: ExitCode.prerequisite,
          hint: `install ${cmd.argv[0]} or add it to PATH (PATH=${childEnv.PATH ?? ''})`,
        });
      }
      if (!ok.includes(r.code)) throw new CommandError(display(cmd), cmd.argv, r.code, opts.log.mask(r.stderr ?? ''));
      if (cmd.stderr === undefined || cmd.stderr === 'capture') {
        const text = (r.stderr ?? '').trim();
        if (text && cmd.stderr === undefined) opts.log.emit({ kind: 'output', text: `${text}\n` });
      }
      return { code: r.code, stdout: r.stdout ?? '', stderr: r.stderr ?? '', dryRun: false };
    },
  };
}

export function abortError(signal: AbortSignal): TaskError {
  const reason = String(signal.reason ?? 'SIGINT');
  const code = reason === 'SIGTERM' || reason === 'SIGHUP' ? ExitCode.sigterm : ExitCode.sigint;
  return new TaskError(`interrupted (${reason})`, { exitCode: code });
}
