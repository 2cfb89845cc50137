// What the kill tests share: a URL-mode project (a database and a host folder part, no containers), `tasks` run in this
// process (the next command after a kill) or as its own process (the one that is killed), with the signals handled as
// tasks.ts handles them (SIGHUP like SIGTERM).
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcessByStdio, type SpawnSyncReturns } from 'node:child_process';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { main } from '../../scripts/core/cli.ts';
import { STOP_AFTER_STEP } from '../../scripts/core/plan.ts';
import { config, tasks } from '../../tasks.ts';
import { serviceTasks } from '../../scripts/tasks/stack.ts';
import { repoRoot, type TestDatabase } from './pg.ts';
import { sink } from './sink.ts';

/** The config both processes run: the registry's, with a database and an `addons` host folder and no app service. */
const KILL_CONFIG = {
  ...config,
  migrate: undefined,
  seedCommand: undefined,
  appServices: [],
  healthCheck: undefined,
  backupParts: [
    { name: 'database', kind: 'database' as const },
    { name: 'addons', kind: 'path' as const, path: 'addons' },
  ],
};
const CONFIG_SOURCE = `{ ...config, migrate: undefined, seedCommand: undefined, appServices: [], healthCheck: undefined,
  backupParts: [{ name: 'database', kind: 'database' }, { name: 'addons', kind: 'path', path: 'addons' }] }`;

export interface KillHarness {
  env(db: TestDatabase, extra?: Record<string, string>): Record<string, string>;
  /** `tasks <argv>` in this process. */
  run(root: string, db: TestDatabase, argv: string[]): Promise<{ code: number; stderr: string }>;
  /** `tasks <argv>` as its own process, killed by its interpreter right after the step named `stopAfter`. */
  killedAfter(root: string, db: TestDatabase, argv: string[], stopAfter: string): SpawnSyncReturns<string>;
  /** The command line of `tasks <argv>` as its own process (for a tool that wraps it: strace). */
  argv(argv: string[]): string[];
  /** `tasks <argv>` as its own process, started with stdout/stderr piped (for a kill from outside). */
  spawn(root: string, db: TestDatabase, argv: string[], extra?: Record<string, string>): ChildProcessByStdio<null, Readable, Readable>;
}

/** The harness for project `project`; `dir` holds the child's script. */
export function killHarness(project: string, dir: string): KillHarness {
  const childScript = path.join(dir, 'tasks-child.mts');
  const imp = (f: string) => JSON.stringify(path.join(repoRoot, f));
  fs.writeFileSync(
    childScript,
    [
      `import { main } from ${imp('scripts/core/cli.ts')};`,
      `import { config, tasks } from ${imp('tasks.ts')};`,
      `import { serviceTasks } from ${imp('scripts/tasks/stack.ts')};`,
      'const controller = new AbortController();',
      "for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => controller.abort(sig));",
      'process.exitCode = await main({ argv: process.argv.slice(2), env: process.env, root: process.env.CT_ROOT!, tasks, serviceTasks,',
      `  config: ${CONFIG_SOURCE} as typeof config, stdout: process.stdout, stderr: process.stderr, stdinIsTTY: false,`,
      '  signal: controller.signal });',
    ].join('\n'),
  );
  const loader = pathToFileURL(path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const env = (db: TestDatabase, extra: Record<string, string> = {}): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    APP_ENV: 'development',
    COMPOSE_PROJECT_NAME: project,
    DATABASE_URL: db.url,
    POSTGRES_DB: db.name,
    ...extra,
  });
  return {
    env,
    async run(root, db, argv) {
      const stderr = sink();
      const code = await main({
        argv,
        env: env(db),
        root,
        tasks,
        serviceTasks,
        config: KILL_CONFIG,
        stdout: sink(),
        stderr,
        stdinIsTTY: false,
      });
      return { code, stderr: stderr.text };
    },
    argv: (argv) => [process.execPath, '--import', loader, childScript, ...argv],
    killedAfter: (root, db, argv, stopAfter) =>
      spawnSync(process.execPath, ['--import', loader, childScript, ...argv], {
        cwd: root,
        env: env(db, { CT_ROOT: root, [STOP_AFTER_STEP]: stopAfter }),
        encoding: 'utf8',
      }),
    spawn: (root, db, argv, extra = {}) =>
      spawn(process.execPath, ['--import', loader, childScript, ...argv], {
        cwd: root,
        env: env(db, { CT_ROOT: root, ...extra }),
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
  };
}
