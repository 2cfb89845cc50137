// The task registry of a web project (NestJS API + Next.js frontend + PostgreSQL), using the toolkit through its one
// public module. From this folder: npx tsx tasks.ts --list (the toolkit and its node_modules come from the repo).
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { builtinTasks, compose, defineConfig, defineTask, main, serviceTasks, sqlMigrations, type AnyTask } from '../../scripts/index.ts';

const root = path.dirname(fileURLToPath(import.meta.url));

export const config = defineConfig({
  composeFiles: ['compose/compose.yaml'],
  devComposeFiles: ['compose/compose.dev.yaml'],
  // `tasks migrate`: migrations/NNN_name.sql in order, each in one transaction, recorded in schema_migrations.
  // A Prisma project would say { service: 'api', command: ['npx', 'prisma', 'migrate', 'deploy'] } instead.
  migrate: sqlMigrations('migrations'),
  // `tasks seed`: seeds/*.sql in name order (development and staging; refused in production without --force).
  seedsDir: 'seeds',
  backupParts: [
    { name: 'database', kind: 'database' },
    // User uploads live in a volume of the api service (the node user of node images is uid 1000).
    { name: 'uploads', kind: 'volume', service: 'api', path: '/app/uploads', owner: '1000:1000' },
  ],
  // Stopped around a restore; the database keeps running.
  appServices: ['api'],
  urls: { API: 'http://localhost:${API_PORT:-3001}', Frontend: 'http://localhost:${FRONTEND_PORT:-3000}' },
  healthCheck: { service: 'api', command: ['wget', '-qO-', 'http://127.0.0.1:3000/health'] },
  nodePath: process.execPath,
});

const myTasks: AnyTask[] = [
  defineTask({
    name: 'api-health',
    description: "The API's /health answer, from inside its container",
    group: 'custom',
    async run(ctx) {
      await ctx.runner.run({ argv: compose.exec(await ctx.compose(), 'api', ['wget', '-qO-', 'http://127.0.0.1:3000/health']) });
    },
  }),
];

export const tasks: AnyTask[] = [...builtinTasks, ...myTasks];

const entry = process.argv[1] ? fs.realpathSync(process.argv[1]) : '';
if (import.meta.url === pathToFileURL(entry).href) {
  const controller = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => controller.abort(sig));
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
