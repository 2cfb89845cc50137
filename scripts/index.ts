// The toolkit's one public entry module: what a tasks.ts imports (the repo's own, and a project's elsewhere, e.g.
// examples/web-api/tasks.ts). Everything else under scripts/ is internal and may change.

// Declaring tasks and the project's settings.
export {
  defineTask,
  defineConfig,
  GROUPS,
  type AnyTask,
  type ArgSpec,
  type BackupPart,
  type ConfirmRequest,
  type GlobalOptions,
  type Group,
  type OptionSpec,
  type ProjectConfig,
  type SqlMigrations,
  type TaskContext,
  type TaskDef,
} from './core/define.ts';
export { sqlMigrations } from './tools/migrations.ts';

// Running the CLI (tasks.ts hands it argv, the environment and its streams).
export { main, type MainOptions } from './core/cli.ts';

// The built-in tasks, by group, and the per-service targets generated from `compose config`.
import { stackTasks, serviceTasks } from './tasks/stack.ts';
import { databaseTasks } from './tasks/database.ts';
import { backupTasks } from './backup/backup.ts';
import { restoreTasks as restoreOnly } from './backup/restore.ts';
import { recover } from './backup/recover.ts';

const restoreTasks: AnyTask[] = [...restoreOnly, recover];
import { cronTasks } from './tasks/cron.ts';
import { operatorTasks } from './tasks/operator.ts';
import type { AnyTask } from './core/define.ts';
export { stackTasks, serviceTasks, databaseTasks, backupTasks, restoreTasks, cronTasks, operatorTasks };
/** Every built-in task, in the order `tasks --list` shows them. */
export const builtinTasks: AnyTask[] = [...stackTasks, ...databaseTasks, ...backupTasks, ...restoreTasks, ...cronTasks, ...operatorTasks];
export { upAndWait } from './tasks/stack.ts';

// Commands as data: compose and PostgreSQL argv builders (nothing runs until ctx.runner.run).
export { compose, composeBase, waitHealthy, containerStates, type ComposeProject, type ServiceInfo } from './tools/compose.ts';
export {
  pgTarget,
  clientCmd,
  psqlArgs,
  pgDumpArgs,
  pgRestoreArgs,
  psqlQuery,
  quoteIdent,
  quoteLiteral,
  describeTarget,
  type PgTarget,
} from './tools/postgres.ts';
export { expandVars } from './tasks/database.ts';
export type { Cmd, Result, Runner } from './core/runner.ts';

// Errors with exit codes (never process.exit in a task: throw these).
export { TaskError, CommandError, ExitCode, usage, refused } from './core/errors.ts';
