// The task registry: the built-in tasks plus your own. The only file that touches `process` and argv.
//   npx tsx tasks.ts <task> [args] [options]      (or: npx tasks …, npm run tasks -- …)
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
// The toolkit's one public entry module: everything a tasks.ts needs.
import { builtinTasks, compose, defineConfig, defineTask, main, serviceTasks, type AnyTask } from './scripts/index.ts';

// bin/tasks.mjs may run a cached bundle of this file: it says where the project is.
const bin = (globalThis as { __composeTasksBin?: { root: string } }).__composeTasksBin;
const root = bin?.root ?? path.dirname(fileURLToPath(import.meta.url));

/** Settings the built-in tasks read. Another stack changes these lines (see docs/workflow.md). */
export const config = defineConfig({
  composeFiles: ['compose/compose.yaml'],
  devComposeFiles: ['compose/compose.dev.yaml'],
  // `tasks migrate`: update every installed Odoo module, then exit. A Prisma stack would say
  // { service: 'api', command: ['npx', 'prisma', 'migrate', 'deploy'] }.
  migrate: { service: 'odoo', command: ['odoo', '--database=${POSTGRES_DB}', '--update=all', '--stop-after-init', '--no-http'] },
  seedsDir: 'seeds',
  backupParts: [
    { name: 'database', kind: 'database' },
    { name: 'filestore', kind: 'volume', service: 'odoo', path: '/var/lib/odoo/filestore', owner: '101:101' },
    { name: 'addons', kind: 'path', path: 'addons' },
  ],
  appServices: ['odoo'],
  urls: { Odoo: 'http://localhost:${ODOO_PORT:-8069}' },
  healthCheck: {
    service: 'odoo',
    command: ['sh', '-c', 'curl -fsS http://localhost:8069/web/health || wget -qO- http://localhost:8069/web/health'],
  },
  // The node binary cron-install writes into the crontab line (cron's PATH has no node).
  nodePath: process.execPath,
});

/** Your own tasks: a name, a description, a group and a run function. */
const myTasks: AnyTask[] = [
  defineTask({
    name: 'odoo-shell',
    description: "Odoo's Python shell on the application database",
    group: 'custom',
    async run(ctx) {
      const db = ctx.env.require('POSTGRES_DB');
      await ctx.runner.run({
        argv: compose.exec(await ctx.compose(), 'odoo', ['odoo', 'shell', `--database=${db}`, '--no-http'], { tty: ctx.interactive }),
        stdin: 'inherit',
        stderr: 'inherit',
      });
    },
  }),
];

export const tasks: AnyTask[] = [...builtinTasks, ...myTasks];

const entry = process.argv[1] ? fs.realpathSync(process.argv[1]) : '';
if (bin || import.meta.url === pathToFileURL(entry).href) {
  const controller = new AbortController();
  // SIGHUP (the terminal or SSH session went away) is handled as SIGTERM: the change is undone or finished, exit 143.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => controller.abort(sig));
  process.exitCode = await main({
    argv: process.argv.slice(2),
    env: process.env,
    root,
    tasks,
    serviceTasks,
    config,
    stdout: process.stdout,
    stderr: process.stderr,
    stdinIsTTY: Boolean(process.stdin.isTTY),
    signal: controller.signal,
  });
}
