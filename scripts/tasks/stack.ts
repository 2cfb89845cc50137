// Stack tasks (dev, stop, down, logs, …) and the per-service targets generated from `compose config`.
import fs from 'node:fs';
import path from 'node:path';
import { defineTask, type AnyTask, type TaskContext } from '../core/define.ts';
import { compose, containerStates, waitHealthy, type ServiceInfo } from '../tools/compose.ts';
import { initEnvFile } from '../core/env.ts';
import { urlForEngine } from '../tools/engine.ts';
import { CommandError, ExitCode, TaskError } from '../core/errors.ts';

const waitMs = (ctx: TaskContext) => Number(ctx.env.get('WAIT_TIMEOUT') ?? 180) * 1000;
const cacheDir = (ctx: TaskContext) => path.join(ctx.root, '.cache', 'compose-tasks');

const bindsWarned = new WeakSet<object>();
/**
 * On a remote engine, once per invocation and before anything starts: the project-folder bind mounts the server
 * resolves on its own disk (docker/compose#8484), read from `compose config` (never printed: it holds secrets).
 */
export async function warnRemoteBinds(ctx: TaskContext): Promise<void> {
  if (bindsWarned.has(ctx.log)) return;
  bindsWarned.add(ctx.log);
  const { describeEngine, projectBinds, remoteBindsWarning } = await import('../tools/engine.ts');
  const engine = await describeEngine(ctx.probe, ctx.env.values, cacheDir(ctx));
  if (!engine.remote) return;
  const services = await ctx.services().catch(() => [] as ServiceInfo[]);
  const warning = remoteBindsWarning(engine, projectBinds(services, ctx.root), ctx.root);
  if (warning) ctx.log.warn(warning);
}

/** Brings services up and waits until healthy: `up --wait` on v2, polling on v1. */
export async function upAndWait(ctx: TaskContext, services: string[] = [], extra: { build?: boolean } = {}): Promise<void> {
  const p = await ctx.compose();
  await warnRemoteBinds(ctx);
  await ctx.runner.run({
    argv: compose.up(p, { services, wait: true, waitTimeout: waitMs(ctx) / 1000, build: extra.build }),
    stdin: 'ignore',
  });
  // Dry run: nothing was started, so the real containers' state says nothing (stopped ones would fail the wait).
  if (ctx.runner.dryRun) {
    ctx.log.info('[dry-run] would wait until the services are healthy');
    return;
  }
  if (p.flavor === 'v1') {
    ctx.log.step('waiting for services to be healthy');
    await waitHealthy(ctx.probe, p, services, waitMs(ctx));
  }
}

/** The shipped stack's URLs with ${VAR} from the environment; on a remote engine they name its host, not localhost. */
export function expandUrls(
  urls: Record<string, string>,
  env: (k: string) => string | undefined,
  engine: { remote: boolean; host?: string } = { remote: false },
): string[] {
  return Object.entries(urls).map(
    ([name, u]) =>
      `${name}: ${urlForEngine(
        u.replace(/\$\{(\w+)(?::-([^}]*))?\}/g, (_, k: string, d?: string) => env(k) ?? d ?? ''),
        engine,
      )}`,
  );
}

export async function printStatus(ctx: TaskContext): Promise<boolean> {
  const p = await ctx.compose();
  const states = await containerStates(ctx.probe, p);
  if (!states.length) {
    ctx.out.write('no containers: the stack is not running (start it: tasks dev)\n');
    return false;
  }
  const rows = states.map((s) => [s.service, s.status, s.health === 'none' ? '-' : s.health, s.id]);
  const widths = [0, 1, 2].map((i) => Math.max(...[['SERVICE', 'STATE', 'HEALTH'][i]!, ...rows.map((r) => r[i]!)].map((x) => x.length)));
  ctx.out.write(`${['SERVICE', 'STATE', 'HEALTH', 'CONTAINER'].map((h, i) => (i < 3 ? h.padEnd(widths[i]! + 2) : h)).join('')}\n`);
  for (const r of rows) ctx.out.write(`${r.map((c, i) => (i < 3 ? c.padEnd(widths[i]! + 2) : c)).join('')}\n`);
  return states.every((s) => s.status === 'running' && s.health !== 'unhealthy' && s.health !== 'starting');
}

export const stackTasks: AnyTask[] = [
  defineTask({
    name: 'env-init',
    description: 'Write .env from .env.template with generated secrets (mode 0600); never overwrites',
    group: 'setup',
    needsEnv: false,
    example: 'tasks env-init --env production',
    async run(ctx) {
      // A dry run writes nothing; an existing .env is refused as in a real run (initEnvFile never overwrites).
      if (ctx.runner.dryRun && !fs.existsSync(path.join(ctx.root, '.env'))) {
        ctx.log.info(`[dry-run] would write .env from .env.template with generated secrets (mode 0600) for APP_ENV=${ctx.env.appEnv}`);
        return;
      }
      const file = initEnvFile(ctx.root, { APP_ENV: ctx.env.appEnv });
      ctx.log.success(`wrote ${path.relative(ctx.root, file)} (mode 0600) for APP_ENV=${ctx.env.appEnv}; review it, then run: tasks dev`);
    },
  }),
  defineTask({
    name: 'dev',
    description: 'Start the stack for development (creates .env with dev secrets on first run), wait until healthy, print URLs',
    group: 'stack',
    needsEnv: false,
    options: { build: { type: 'boolean', description: 'build images before starting' } },
    example: 'npx tsx tasks.ts dev',
    async run(ctx) {
      if (!fs.existsSync(path.join(ctx.root, '.env'))) {
        if (ctx.runner.dryRun) ctx.log.info('[dry-run] would write .env from .env.template with generated secrets');
        else {
          initEnvFile(ctx.root, { APP_ENV: 'development' });
          ctx.log.success('created .env with generated development secrets (mode 0600)');
          ctx.reloadEnv();
        }
      }
      const { validateEnv, readTemplate, envProblemsError } = await import('../core/env.ts');
      const problems = await validateEnv(ctx.env, readTemplate(ctx.root));
      if (problems.length && !ctx.runner.dryRun) throw envProblemsError(ctx.env, problems);
      await upAndWait(ctx, [], { build: ctx.opts.build });
      if (ctx.runner.dryRun) ctx.log.info('[dry-run] nothing was started; once up and healthy, the stack answers at:');
      else ctx.log.success('the stack is up and healthy');
      const { describeEngine } = await import('../tools/engine.ts');
      const engine = await describeEngine(ctx.probe, ctx.env.values, cacheDir(ctx));
      for (const line of expandUrls(ctx.config.urls ?? {}, ctx.env.get, engine)) ctx.out.write(`${line}\n`);
    },
  }),
  defineTask({
    name: 'stop',
    description: 'Stop every service (containers and volumes kept)',
    group: 'stack',
    async run(ctx) {
      await ctx.runner.run({ argv: compose.stop(await ctx.compose()) });
    },
  }),
  defineTask({
    name: 'down',
    description: 'Remove the containers and network; volumes are kept unless --volumes (asks first)',
    group: 'stack',
    options: { volumes: { type: 'boolean', short: 'v', description: 'also delete the volumes: the database and the filestore' } },
    example: 'tasks down --volumes --yes',
    async run(ctx) {
      const p = await ctx.compose();
      if (ctx.opts.volumes) {
        await ctx.confirm({
          message:
            `This deletes the volumes of project ${ctx.env.get('COMPOSE_PROJECT_NAME') ?? ''} (APP_ENV=${ctx.env.appEnv}): ` +
            'the database and the filestore are lost.',
          requireForce: ctx.env.appEnv === 'production',
        });
      }
      await ctx.runner.run({ argv: compose.down(p, { volumes: ctx.opts.volumes }) });
    },
  }),
  defineTask({
    name: 'restart',
    description: 'Restart services (all, or the ones named)',
    group: 'stack',
    args: { services: { description: 'services to restart (default: all)', variadic: true } },
    async run(ctx) {
      const p = await ctx.compose();
      await warnRemoteBinds(ctx);
      await ctx.runner.run({ argv: compose.restart(p, ctx.args.services) });
    },
  }),
  defineTask({
    name: 'status',
    aliases: ['ps'],
    description: 'State and health of each service',
    group: 'stack',
    async run(ctx) {
      await printStatus(ctx);
    },
  }),
  defineTask({
    name: 'logs',
    description: 'Show logs (all services, or one); -f follows',
    group: 'stack',
    args: { service: { description: 'one service (default: all)' } },
    options: {
      follow: { type: 'boolean', short: 'f', description: 'follow the output' },
      tail: { type: 'string', description: 'lines from the end of each log', default: '200', placeholder: 'n' },
    },
    example: 'tasks logs odoo -f',
    async run(ctx) {
      await ctx.runner.run({
        argv: compose.logs(await ctx.compose(), {
          services: ctx.args.service ? [ctx.args.service] : [],
          follow: ctx.opts.follow,
          tail: ctx.opts.tail,
        }),
        stderr: 'inherit',
      });
    },
  }),
  defineTask({
    name: 'build',
    description: 'Build the images of services that have a build section',
    group: 'stack',
    args: { services: { description: 'services (default: all)', variadic: true } },
    async run(ctx) {
      await ctx.runner.run({ argv: compose.build(await ctx.compose(), ctx.args.services), stderr: 'inherit' });
    },
  }),
  defineTask({
    name: 'pull',
    description: 'Pull the images of the stack',
    group: 'stack',
    args: { services: { description: 'services (default: all)', variadic: true } },
    async run(ctx) {
      await ctx.runner.run({ argv: compose.pull(await ctx.compose(), ctx.args.services), stderr: 'inherit' });
    },
  }),
  defineTask({
    name: 'health',
    description: 'Exit 0 when every service runs and is healthy (and the app health check passes), else 7',
    group: 'stack',
    async run(ctx) {
      const ok = await printStatus(ctx);
      if (!ok) throw new TaskError('the stack is not healthy', { exitCode: ExitCode.unhealthy, hint: 'see: tasks logs' });
      if (ctx.config.healthCheck) {
        const p = await ctx.compose();
        const { service, command } = ctx.config.healthCheck;
        try {
          await ctx.runner.run({ argv: compose.exec(p, service, command), stdout: 'ignore', stderr: 'capture' });
        } catch (err) {
          if (!(err instanceof CommandError)) throw err;
          throw new TaskError(`the ${service} health check failed (exit ${err.exitCode})`, {
            exitCode: ExitCode.unhealthy,
            hint: `see: tasks logs-${service}`,
          });
        }
      }
      if (ctx.runner.dryRun && ctx.config.healthCheck) ctx.log.info('[dry-run] the services are healthy; the health check above would run');
      else ctx.log.success('healthy');
    },
  }),
];

/** shell-<svc>, logs-<svc>, <svc>-restart, <svc>-rebuild, <svc>-stop for every service compose reports. */
export function serviceTasks(services: ServiceInfo[]): AnyTask[] {
  return services.flatMap((s): AnyTask[] => [
    defineTask({
      name: `shell-${s.name}`,
      description: `Shell in ${s.name} (bash, else sh); \`-- cmd args\` runs a command`,
      group: 'services',
      args: { command: { description: 'command to run instead of a shell (after --)', variadic: true } },
      example: s.name === 'db' ? `tasks shell-db -- psql -U odoo -c 'select 1'` : `tasks shell-${s.name} -- ls /`,
      async run(ctx) {
        const p = await ctx.compose();
        const cmd = ctx.args.command.length
          ? ctx.args.command
          : ['sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi'];
        await ctx.runner.run({
          argv: compose.exec(p, s.name, cmd, { tty: ctx.interactive && Boolean(ctx.out.isTTY) }),
          stdin: 'inherit',
          stderr: 'inherit',
        });
      },
    }),
    defineTask({
      name: `logs-${s.name}`,
      description: `Logs of ${s.name}; -f follows`,
      group: 'services',
      options: {
        follow: { type: 'boolean', short: 'f', description: 'follow the output' },
        tail: { type: 'string', description: 'lines from the end', default: '200', placeholder: 'n' },
      },
      async run(ctx) {
        await ctx.runner.run({
          argv: compose.logs(await ctx.compose(), { services: [s.name], follow: ctx.opts.follow, tail: ctx.opts.tail }),
          stderr: 'inherit',
        });
      },
    }),
    defineTask({
      name: `${s.name}-restart`,
      description: `Restart ${s.name} only`,
      group: 'services',
      async run(ctx) {
        const p = await ctx.compose();
        await warnRemoteBinds(ctx);
        await ctx.runner.run({ argv: compose.restart(p, [s.name]) });
      },
    }),
    defineTask({
      name: `${s.name}-rebuild`,
      description: `${s.build ? 'Build and recreate' : 'Recreate'} ${s.name} only; the others keep running`,
      group: 'services',
      async run(ctx) {
        const p = await ctx.compose();
        await warnRemoteBinds(ctx);
        if (s.build) await ctx.runner.run({ argv: compose.build(p, [s.name]), stderr: 'inherit' });
        await ctx.runner.run({ argv: compose.up(p, { services: [s.name], noDeps: true, forceRecreate: true }) });
        if (s.healthcheck && !ctx.runner.dryRun) await waitHealthy(ctx.probe, p, [s.name], waitMs(ctx));
      },
    }),
    defineTask({
      name: `${s.name}-stop`,
      description: `Stop ${s.name} only`,
      group: 'services',
      async run(ctx) {
        await ctx.runner.run({ argv: compose.stop(await ctx.compose(), [s.name]) });
      },
    }),
  ]);
}
