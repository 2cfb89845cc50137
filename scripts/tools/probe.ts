// A read-only probe a dry run may not be able to run (no engine, the stack down, the server not answering): said so,
// and the plan goes on. What counts as "cannot run" is the tools' knowledge (cannotRunReason in compose.ts).
import type { TaskContext } from '../core/define.ts';
import { cannotRunReason } from './compose.ts';

/**
 * A read-only fact the plan depends on (a server version, whether a database exists), read through ctx.probe. In a real
 * run it is read as it is and its error goes through unchanged. In a dry run, when it cannot be read at all (no engine,
 * the stack is down, the server does not answer: cannotRunReason), it prints "[dry-run] <label>: unknown (<why>)" and
 * returns `fallback`, so the rest of the plan is still shown; any other failure (a corrupt dump) goes through.
 */
export async function readOrUnknown<T>(
  ctx: Pick<TaskContext, 'global' | 'log'>,
  label: string,
  read: () => Promise<T>,
  fallback: T,
): Promise<T> {
  if (!ctx.global.dryRun) return read();
  try {
    return await read();
  } catch (err) {
    const why = cannotRunReason(err);
    if (why === undefined) throw err;
    ctx.log.info(`[dry-run] ${label}: unknown (${why})`);
    return fallback;
  }
}
