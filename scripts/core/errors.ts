// Errors that carry an exit code, so library code never calls process.exit.

/** Documented exit codes (see docs/reference.md "Exit codes"). A child's own code passes through unchanged. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  refused: 3,
  invalidEnv: 4,
  lockHeld: 5,
  prerequisite: 6,
  unhealthy: 7,
  uploadFailed: 8,
  sigint: 130,
  sigterm: 143,
} as const;
export type ExitCodeName = keyof typeof ExitCode;

export class TaskError extends Error {
  readonly exitCode: number;
  /** One line telling the user what to do next; printed under the message. */
  readonly hint: string | undefined;
  constructor(message: string, opts: { exitCode?: number; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TaskError';
    this.exitCode = opts.exitCode ?? ExitCode.failure;
    this.hint = opts.hint;
  }
}

/** A child process exited with a code that is not allowed; its code passes through. */
export class CommandError extends TaskError {
  readonly argv: readonly string[];
  readonly stderrTail: string;
  constructor(display: string, argv: readonly string[], code: number, stderrTail: string) {
    const last = stderrTail.trim().split('\n').filter(Boolean).slice(-1)[0] ?? '';
    super(`${argv[0]} exited with code ${code}${last ? `: ${last}` : ''}`, {
      exitCode: code || ExitCode.failure,
      hint: `command: ${display}`,
    });
    this.name = 'CommandError';
    this.argv = argv;
    this.stderrTail = stderrTail;
  }
}

export const usage = (message: string, hint?: string) => new TaskError(message, { exitCode: ExitCode.usage, hint });
export const refused = (message: string, hint?: string) => new TaskError(message, { exitCode: ExitCode.refused, hint });

export function exitCodeOf(err: unknown): number {
  if (err instanceof TaskError) return err.exitCode;
  return ExitCode.failure;
}
