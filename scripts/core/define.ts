// Task definitions as typed data: defineTask() is an identity helper that exists only for type inference.
import type { Logger } from './log.ts';
import type { Runner } from './runner.ts';
import type { LoadedEnv } from './env.ts';
import type { ComposeProject, ServiceInfo } from '../tools/compose.ts';

export const GROUPS = ['stack', 'services', 'database', 'backups', 'setup', 'custom'] as const;
export type Group = (typeof GROUPS)[number];

export interface ArgSpec {
  description: string;
  required?: boolean;
  /** Takes the rest of the words (and everything after `--`). */
  variadic?: boolean;
}

export interface OptionSpec {
  description: string;
  type: 'boolean' | 'string';
  short?: string;
  default?: string | boolean;
  /** Shown in help as <value>. */
  placeholder?: string;
}

type ArgValue<A extends ArgSpec> = A['variadic'] extends true ? string[] : A['required'] extends true ? string : string | undefined;
type OptValue<O extends OptionSpec> = O['type'] extends 'boolean' ? boolean : O['default'] extends string ? string : string | undefined;

export type ArgsOf<A extends Record<string, ArgSpec>> = { [K in keyof A]: ArgValue<A[K]> };
export type OptsOf<O extends Record<string, OptionSpec>> = { [K in keyof O]: OptValue<O[K]> };

/** Options every task accepts; decided in one place (the CLI) and handed to every task. */
export interface GlobalOptions {
  dryRun: boolean;
  yes: boolean;
  quiet: boolean;
  /** APP_ENV chosen with --env, if any. */
  env?: string;
}

export interface ConfirmRequest {
  /** What will be lost, shown before asking. */
  message: string;
  /** When set, the user must type this exact text (the database name) instead of y/N. */
  typed?: string;
  /** Production (or another guarded case): without a terminal, --yes alone is not enough, --force is needed too. */
  requireForce?: boolean;
  /** Whether --force was given to the task. */
  force?: boolean;
}

export interface TaskContext<A = Record<string, unknown>, O = Record<string, unknown>> {
  args: A;
  opts: O;
  global: GlobalOptions;
  /** Project root (where tasks.ts lives). */
  root: string;
  env: LoadedEnv;
  /** Reads the env files again (after env-init wrote .env); later ctx.env/runner use the new values. */
  reloadEnv(): LoadedEnv;
  runner: Runner;
  /** Quiet runner for read-only facts (versions, states); it also runs in dry-run. Never use it to change anything. */
  probe: Runner;
  log: Logger;
  /** The compose project (v1/v2 detected once per invocation). */
  compose(): Promise<ComposeProject>;
  /** Services as `compose config` resolves them. */
  services(): Promise<ServiceInfo[]>;
  /** Asks in a terminal, accepts --yes otherwise, refuses (exit 3) with no terminal; Ctrl-C aborts (exit 130). */
  confirm(req: ConfirmRequest): Promise<void>;
  /** Runs another task once per invocation (keyed by name and arguments). */
  runTask(name: string, input?: { args?: Record<string, unknown>; opts?: Record<string, unknown> }): Promise<void>;
  /** Registered cleanups run in reverse order when the task ends, fails or is interrupted. */
  onCleanup(fn: () => void | Promise<void>): void;
  /** Aborted on SIGINT/SIGTERM/SIGHUP (SIGHUP counts as SIGTERM: exit 143); reason is the signal name. */
  signal: AbortSignal;
  /** Standard output for results (lists, JSON); logs go to stderr. */
  out: { write(s: string): unknown; isTTY?: boolean };
  /** Whether standard input is a terminal. */
  interactive: boolean;
  /** The configuration handed to the built-in tasks in tasks.ts. */
  config: ProjectConfig;
}

export interface TaskDef<
  A extends Record<string, ArgSpec> = Record<string, ArgSpec>,
  O extends Record<string, OptionSpec> = Record<string, OptionSpec>,
> {
  name: string;
  description: string;
  group: Group;
  aliases?: string[];
  args?: A;
  options?: O;
  /** One example shown in `tasks help <task>`. */
  example?: string;
  /** Tasks that run first, once per invocation. */
  deps?: string[];
  /** Hidden tasks run but are not listed. */
  hidden?: boolean;
  /** Whether the task needs a valid environment (validated against .env.template first). Default true. */
  needsEnv?: boolean;
  // biome-ignore lint/suspicious/noConfusingVoidType: a task returns nothing, or an exit code
  run(ctx: TaskContext<ArgsOf<A>, OptsOf<O>>): Promise<void | number>;
}

// biome-ignore lint/suspicious/noExplicitAny: a registry holds tasks of every argument and option shape
export type AnyTask = TaskDef<any, any>;

/** Declare a task: returns its argument unchanged, typed so `ctx.args` and `ctx.opts` are inferred. */
// biome-ignore lint/complexity/noBannedTypes: `{}` is "no arguments / no options", the default the inference starts from
export function defineTask<const A extends Record<string, ArgSpec> = {}, const O extends Record<string, OptionSpec> = {}>(
  def: TaskDef<A, O>,
): TaskDef<A, O> {
  return def;
}

/** A part of a backup, declared in tasks.ts. */
export type BackupPart =
  | { name: string; kind: 'database' }
  | { name: string; kind: 'volume'; service: string; path: string; owner?: string }
  /** A folder on the engine's host (relative to the root). On a remote engine it is read and restored through a
   *  one-off container of `service` (default: the first of appServices), since the folder lives on the server. */
  | { name: string; kind: 'path'; path: string; service?: string };

/**
 * `tasks migrate` applies SQL files `NNN_name.sql` from `dir` (relative to the root) in version order, each in one
 * transaction, recorded in `table` (default schema_migrations: version, name, checksum, applied_at); applied ones are
 * skipped, a changed applied file is refused. Declare it with sqlMigrations('migrations') (scripts/tools/migrations.ts).
 */
export interface SqlMigrations {
  kind: 'sqlMigrations';
  dir: string;
  table?: string;
}

/** Per-project settings the built-in tasks read; set in tasks.ts. */
export interface ProjectConfig {
  /** Compose files relative to the root, base first; used unless COMPOSE_FILE is set. */
  composeFiles: string[];
  /**
   * Compose's project directory (relative paths in the compose files resolve there) for these files, relative to the
   * root. Default: the root when the first file is inside it, else that file's folder (compose's own rule).
   */
  projectDirectory?: string;
  /** Extra compose files in development (the dev override). */
  devComposeFiles: string[];
  /** What `tasks migrate` runs: a command in a service (`compose run`), SQL migration files, or your own function. */
  migrate?: { service: string; command: string[] } | SqlMigrations | ((ctx: TaskContext) => Promise<void>);
  /** Run after seeds/*.sql, if set. */
  seedCommand?: { service: string; command: string[] };
  /** Folder of seed files relative to the root. */
  seedsDir: string;
  /** Parts of a backup, in order. */
  backupParts: BackupPart[];
  /** Services stopped around a restore (the database keeps running). */
  appServices: string[];
  /** URLs printed by `dev` once the stack is healthy. */
  urls?: Record<string, string>;
  /** Health check after start / restore, beyond compose healthchecks. */
  healthCheck?: { service: string; command: string[] };
  /** Absolute path of the node binary running the tasks (tasks.ts sets process.execPath); cron-install writes it into the crontab line. */
  nodePath?: string;
}

export function defineConfig(c: ProjectConfig): ProjectConfig {
  return c;
}
