// The CLI: turns argv into a task run (commander), lists and explains tasks, and maps every failure to an exit code.
import path from 'node:path';
import { setMaxListeners } from 'node:events';
import { Command, CommanderError, Option } from 'commander';
import { ExitCode, TaskError, exitCodeOf } from './errors.ts';
import { createLogger, secretsFromEnv, type LogSink, type Logger } from './log.ts';
import { createRunner, type Exec, type Runner } from './runner.ts';
import { GROUPS, type AnyTask, type ArgSpec, type OptionSpec, type GlobalOptions, type ProjectConfig, type TaskContext } from './define.ts';
import { loadEnv, readTemplate, validateEnv, envProblemsError, worldReadableEnvFiles, type LoadedEnv } from './env.ts';
import {
  composeFiles,
  detectFlavor,
  discoverServices,
  explainDockerError,
  projectDirectory,
  type ComposeProject,
  type ServiceInfo,
} from '../tools/compose.ts';
import { confirm } from './confirm.ts';
import { completionWords } from './completion.ts';

export interface MainOptions {
  argv: string[];
  /** The real environment. */
  env: Readonly<Record<string, string | undefined>>;
  root: string;
  tasks: AnyTask[];
  /** Builds the generated per-service tasks from the discovered services. */
  serviceTasks?: (services: ServiceInfo[]) => AnyTask[];
  config: ProjectConfig;
  stdout: LogSink;
  stderr: LogSink;
  stdinIsTTY: boolean;
  signal?: AbortSignal;
  exec?: Exec;
  /** Answers for prompts, for tests. */
  promptAnswers?: unknown[];
}

const GLOBAL_FLAGS = new Set(['-n', '--dry-run', '-y', '--yes', '-q', '--quiet', '--list', '-h', '--help', '-V', '--version']);

/** Options every task accepts, before or after its name: decided here once and handed to the task as ctx.global. */
function addGlobalOptions(cmd: Command): Command {
  return cmd
    .option('-n, --dry-run', 'print every external command, run none')
    .option('-y, --yes', 'answer yes to confirmations (needed without a terminal)')
    .option('--env <name>', 'APP_ENV to use: development, staging or production')
    .option('-q, --quiet', 'do not echo commands');
}
const GLOBAL_KEYS = ['dryRun', 'yes', 'env', 'quiet'] as const;

/** The first word of argv that is not a global option: the task name, if any. */
export function taskWord(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return undefined;
    if (a === '--env') {
      i++;
      continue;
    }
    if (a.startsWith('--env=')) continue;
    if (GLOBAL_FLAGS.has(a)) continue;
    if (a.startsWith('-')) continue;
    return a;
  }
  return undefined;
}

function findTask(tasks: AnyTask[], name: string): AnyTask | undefined {
  return tasks.find((t) => t.name === name) ?? tasks.find((t) => t.aliases?.includes(name));
}

export function formatList(tasks: AnyTask[], note?: string): string {
  const visible = tasks.filter((t) => !t.hidden);
  const width = Math.min(28, Math.max(...visible.map((t) => t.name.length)) + 2);
  const lines = ['Usage: tasks <task> [args] [options]', ''];
  for (const g of GROUPS) {
    const inGroup = visible.filter((t) => t.group === g);
    if (!inGroup.length) continue;
    lines.push(`${g}:`);
    for (const t of inGroup)
      lines.push(`  ${t.name.padEnd(width)}${t.description}${t.aliases?.length ? ` (alias: ${t.aliases.join(', ')})` : ''}`);
    lines.push('');
  }
  if (note) lines.push(note, '');
  lines.push('Global options: -n/--dry-run, -y/--yes, --env <development|staging|production>, -q/--quiet');
  lines.push('Run `tasks help <task>` for its arguments, options and an example.');
  return `${lines.join('\n')}\n`;
}

function addTaskCommand(
  program: Command,
  t: AnyTask,
  execute: (t: AnyTask, args: Record<string, unknown>, opts: Record<string, unknown>) => Promise<void>,
): void {
  const cmd = addGlobalOptions(program.command(t.name).description(t.description));
  if (t.aliases?.length) cmd.aliases(t.aliases);
  const argEntries = Object.entries((t.args ?? {}) as Record<string, ArgSpec>);
  for (const [name, a] of argEntries) {
    cmd.argument(
      a.variadic ? `${a.required ? '<' : '['}${name}...${a.required ? '>' : ']'}` : a.required ? `<${name}>` : `[${name}]`,
      a.description,
    );
  }
  for (const [name, o] of Object.entries((t.options ?? {}) as Record<string, OptionSpec>)) {
    const long = `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    const flags = `${o.short ? `-${o.short}, ` : ''}${long}${o.type === 'string' ? ` <${o.placeholder ?? 'value'}>` : ''}`;
    const opt = new Option(flags, o.description);
    if (o.default !== undefined) opt.default(o.default);
    cmd.addOption(opt);
  }
  if (t.example) cmd.addHelpText('after', `\nExample:\n  $ ${t.example}\n`);
  cmd.action(async (...params: unknown[]) => {
    const values = params.slice(0, argEntries.length);
    const all = (params[argEntries.length] ?? {}) as Record<string, unknown>;
    const opts = Object.fromEntries(Object.entries(all).filter(([k]) => !(GLOBAL_KEYS as readonly string[]).includes(k)));
    const globals = Object.fromEntries(Object.entries(all).filter(([k]) => (GLOBAL_KEYS as readonly string[]).includes(k)));
    // commander reads `--no-x` as x=false; a task that declared `noX` gets noX=true (and no stray `x`).
    for (const name of Object.keys(t.options ?? {})) {
      const m = /^no([A-Z].*)$/.exec(name);
      if (!m) continue;
      const positive = m[1]![0]!.toLowerCase() + m[1]!.slice(1);
      opts[name] = opts[positive] === false;
      delete opts[positive];
    }
    Object.assign(opts, { __globals: globals });
    const args: Record<string, unknown> = {};
    argEntries.forEach(([name, a], i) => {
      args[name] = a.variadic ? ((values[i] as string[] | undefined) ?? []) : values[i];
    });
    await execute(t, args, opts);
  });
}

export async function main(o: MainOptions): Promise<number> {
  const errLog = createLogger({ sink: o.stderr });
  const word = taskWord(o.argv);
  const before = word ? o.argv.slice(0, o.argv.indexOf(word)) : o.argv;
  const listFlag = before.includes('--list');
  const listing = !word || listFlag || word === 'help' || word === 'completion' || word === '__complete';
  let tasks = [...o.tasks];
  let discoveryNote: string | undefined;

  // Generated per-service targets need the compose configuration; only when the name is not a static task.
  if ((listing || (word && !findTask(tasks, word))) && o.serviceTasks) {
    try {
      const env = loadEnv({ root: o.root, processEnv: o.env, appEnv: argvEnv(o.argv) });
      const probe = quietRunner(o, env, errLog);
      const services = await discoverServices(probe, composeWhere(env, o), () => projectFor(probe, env, o), env.values, env.files);
      tasks = [...tasks, ...o.serviceTasks(services).filter((s) => !findTask(o.tasks, s.name))];
    } catch (err) {
      const e = explainDockerError(err);
      discoveryNote = `(per-service targets unavailable: ${e instanceof Error ? e.message : String(e)})`;
      if (word && !listing && !findTask(tasks, word) && e instanceof TaskError && /^(shell|logs)-|-(restart|rebuild|stop)$/.test(word)) {
        errLog.emit({ kind: 'error', message: e.message, hint: e.hint });
        return e.exitCode;
      }
    }
  }

  // Hidden, for shell completion: task names (service targets included) or, after a task name, its flags.
  if (word === '__complete' && !listFlag) {
    o.stdout.write(completionWords(tasks, o.argv[o.argv.indexOf(word) + 1]));
    return 0;
  }

  const program = addGlobalOptions(
    new Command('tasks')
      .description('Tasks for this docker compose stack: dev workflow, database, backups, restore.')
      .usage('<task> [args] [options]'),
  )
    .option('--list', 'list every task')
    .enablePositionalOptions()
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({ writeOut: (s) => o.stdout.write(s), writeErr: (s) => o.stderr.write(s), outputError: (s, write) => write(s) });
  program.helpCommand('help [task]', "show a task's arguments, options and an example");

  let exitCode = 0;
  const execute = async (t: AnyTask, args: Record<string, unknown>, opts: Record<string, unknown>) => {
    const local = (opts.__globals ?? {}) as Record<string, unknown>;
    delete opts.__globals;
    const g = { ...program.opts(), ...local } as { dryRun?: boolean; yes?: boolean; env?: string; quiet?: boolean };
    exitCode = await runTask(o, tasks, t, args, opts, {
      dryRun: Boolean(g.dryRun),
      yes: Boolean(g.yes),
      quiet: Boolean(g.quiet),
      env: g.env,
    });
  };
  for (const t of tasks) addTaskCommand(program, t, execute);

  if (!word && !o.argv.some((a) => a === '-h' || a === '--help' || a === '-V' || a === '--version')) {
    o.stdout.write(formatList(tasks, discoveryNote));
    return 0;
  }
  if (listFlag) {
    o.stdout.write(formatList(tasks, discoveryNote));
    return 0;
  }
  try {
    await program.parseAsync(o.argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') return 0;
      return ExitCode.usage;
    }
    errLog.emit({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
    return exitCodeOf(err);
  }
}

function argvEnv(argv: string[]): string | undefined {
  const i = argv.indexOf('--env');
  if (i >= 0) return argv[i + 1];
  return argv.find((a) => a.startsWith('--env='))?.slice(6);
}

function quietRunner(o: MainOptions, env: LoadedEnv, log: Logger): Runner {
  const quiet = createLogger({ sink: { write: () => true }, quiet: true, secrets: secretsFromEnv(env.values) });
  void log;
  return createRunner({ log: quiet, env: env.values, cwd: o.root, exec: o.exec, signal: o.signal });
}

/** The compose files and project directory for this environment (everything of ComposeProject but the flavor). */
function composeWhere(env: LoadedEnv, o: MainOptions): Omit<ComposeProject, 'flavor'> {
  const files = composeFiles(env.values, o.config.composeFiles, o.config.devComposeFiles);
  const dir = projectDirectory(o.root, env.values, o.config, files);
  return { root: o.root, files, ...(dir !== o.root ? { projectDir: dir } : {}) };
}

async function projectFor(probe: Runner, env: LoadedEnv, o: MainOptions): Promise<ComposeProject> {
  const cacheDir = path.join(o.root, '.cache', 'compose-tasks');
  const flavor = await detectFlavor(probe, env.values, cacheDir);
  const { prepareProject } = await import('../tools/engine.ts');
  return prepareProject(probe, env.values, { flavor, ...composeWhere(env, o) }, cacheDir);
}

async function runTask(
  o: MainOptions,
  tasks: AnyTask[],
  task: AnyTask,
  args: Record<string, unknown>,
  opts: Record<string, unknown>,
  global: GlobalOptions,
): Promise<number> {
  const errLog = createLogger({ sink: o.stderr });
  const cleanups: Array<() => void | Promise<void>> = [];
  const ran = new Map<string, Promise<void>>();
  const signal = o.signal ?? new AbortController().signal;
  // Every running command and file stream listens for the abort; a backup runs a dozen at once, not a leak.
  setMaxListeners(100, signal);
  let log: Logger = errLog;
  try {
    const env0 = loadEnv({ root: o.root, processEnv: o.env, appEnv: global.env });
    log = createLogger({ sink: o.stderr, quiet: global.quiet, secrets: secretsFromEnv(env0.values) });
    const makeState = (env: LoadedEnv) => {
      for (const s of secretsFromEnv(env.values)) log.addSecret(s);
      return {
        env,
        runner: createRunner({ log, dryRun: global.dryRun, env: env.values, cwd: o.root, exec: o.exec, signal }),
        probe: createRunner({
          log: createLogger({ sink: o.stderr, quiet: true, secrets: secretsFromEnv(env.values) }),
          env: env.values,
          cwd: o.root,
          exec: o.exec,
          signal,
        }),
      };
    };
    let st = makeState(env0);
    let project: Promise<ComposeProject> | undefined;
    let services: Promise<ServiceInfo[]> | undefined;
    const template = readTemplate(o.root);

    const ctxFor = (_t: AnyTask, a: Record<string, unknown>, op: Record<string, unknown>): TaskContext => ({
      args: a,
      opts: op,
      global,
      root: o.root,
      log,
      signal,
      out: o.stdout,
      interactive: o.stdinIsTTY,
      config: o.config,
      get env() {
        return st.env;
      },
      get runner() {
        return st.runner;
      },
      get probe() {
        return st.probe;
      },
      reloadEnv: () => {
        st = makeState(loadEnv({ root: o.root, processEnv: o.env, appEnv: global.env }));
        project = undefined;
        services = undefined;
        return st.env;
      },
      compose: () => (project ??= projectFor(st.probe, st.env, o)),
      services: async () =>
        (services ??= discoverServices(
          st.probe,
          composeWhere(st.env, o),
          () => (project ??= projectFor(st.probe, st.env, o)),
          st.env.values,
          st.env.files,
        )),
      confirm: (req) => confirm(req, { yes: global.yes, interactive: o.stdinIsTTY, log, inject: o.promptAnswers }),
      onCleanup: (fn) => {
        cleanups.push(fn);
      },
      runTask: async (name, input = {}) => {
        const dep = findTask(tasks, name);
        if (!dep) throw new TaskError(`task "${name}" (a dependency) is not defined`, { exitCode: ExitCode.usage });
        const key = `${dep.name}\0${JSON.stringify(input)}`;
        // Option defaults apply as on the command line (e.g. backup's --reason manual).
        const defaults = Object.fromEntries(
          Object.entries((dep.options ?? {}) as Record<string, OptionSpec>)
            .filter(([, v]) => v.default !== undefined)
            .map(([k, v]) => [k, v.default]),
        );
        if (!ran.has(key)) ran.set(key, invoke(dep, input.args ?? {}, { ...defaults, ...input.opts }));
        return ran.get(key);
      },
    });

    const invoke = async (t: AnyTask, a: Record<string, unknown>, op: Record<string, unknown>): Promise<void> => {
      for (const d of t.deps ?? []) await ctxFor(t, a, op).runTask(d);
      if (t.needsEnv !== false) {
        const problems = await validateEnv(st.env, template, { cacheDir: path.join(o.root, '.cache', 'compose-tasks') });
        if (problems.length) throw envProblemsError(st.env, problems);
      }
      const code = await t.run(ctxFor(t, a, op) as never);
      if (typeof code === 'number' && code !== 0) throw new TaskError(`${t.name} failed`, { exitCode: code });
    };

    if (task.needsEnv !== false) {
      for (const f of worldReadableEnvFiles(o.root, st.env.files))
        log.warn(`${f} is readable by other users and holds passwords: chmod 600 ${f}`);
    }
    await invoke(task, args, opts);
    return 0;
  } catch (err) {
    const e = explainDockerError(err);
    if (e instanceof TaskError) log.emit({ kind: 'error', message: e.message, hint: e.hint });
    else log.emit({ kind: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    return exitCodeOf(e);
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        log.warn(`cleanup failed: ${(err as Error).message}`);
      }
    }
  }
}
