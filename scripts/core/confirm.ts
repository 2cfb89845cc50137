// Confirmation before destructive work: asks in a terminal, --yes without one, refuses otherwise; never hangs.
import { ExitCode, TaskError, refused } from './errors.ts';
import type { ConfirmRequest } from './define.ts';
import type { Logger } from './log.ts';

export interface ConfirmEnv {
  yes: boolean;
  interactive: boolean;
  log: Logger;
  /** For tests: answers given to prompts (prompts.inject). */
  inject?: unknown[];
}

export async function confirm(req: ConfirmRequest, env: ConfirmEnv): Promise<void> {
  if (req.requireForce) {
    // Guarded (production): --yes alone is not enough; --yes --force, or a typed answer in a terminal.
    if (env.yes && req.force) {
      env.log.info(`${req.message}\n(confirmed by --yes --force)`);
      return;
    }
    if (!env.interactive && env.inject === undefined) {
      throw refused(
        `${firstLine(req.message)}: refused, this is guarded and there is no terminal to confirm in`,
        'pass --yes --force to confirm without a terminal',
      );
    }
  } else {
    if (env.yes) {
      env.log.info(`${req.message}\n(confirmed by --yes)`);
      return;
    }
    if (!env.interactive && env.inject === undefined) {
      throw refused(`${firstLine(req.message)}: refused, no terminal to confirm in`, 'pass --yes to confirm without a terminal');
    }
  }
  const { default: prompts } = await import('prompts');
  if (env.inject) prompts.inject(env.inject);
  let cancelled = false;
  env.log.info(req.message);
  const answer = await prompts(
    req.typed
      ? { type: 'text', name: 'value', message: `Type "${req.typed}" to confirm` }
      : { type: 'confirm', name: 'value', message: 'Continue?', initial: false },
    {
      onCancel: () => {
        cancelled = true;
        return false;
      },
    },
  );
  if (cancelled) throw new TaskError('aborted', { exitCode: ExitCode.sigint });
  const ok = req.typed ? answer.value === req.typed : answer.value === true;
  if (!ok)
    throw refused(req.typed ? `confirmation did not match "${req.typed}": nothing was changed` : 'not confirmed: nothing was changed');
}

const firstLine = (s: string) => s.split('\n')[0] ?? s;
