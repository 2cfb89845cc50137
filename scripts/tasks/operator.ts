// Operator tasks: doctor, setup, storage-reset, storage-seed, completion.
import fs from 'node:fs';
import path from 'node:path';
import { defineTask, type AnyTask, type TaskContext } from '../core/define.ts';
import { ExitCode, TaskError, refused, usage } from '../core/errors.ts';

/** The development object storage: same bucket as production, at DEV_S3_ENDPOINT (S3_ENDPOINT in development). Never production. */
export function devStorage(ctx: TaskContext): { bucket: string; prefix: string; endpoint?: string; region?: string } {
  if (ctx.env.appEnv === 'production') {
    throw refused(
      'storage-reset and storage-seed are for the development object storage; refusing in production',
      'run them with APP_ENV=development (or --env development) against DEV_S3_ENDPOINT',
    );
  }
  const bucket = ctx.env.get('S3_BUCKET');
  if (!bucket)
    throw new TaskError('S3_BUCKET is not set: no bucket to work on', {
      exitCode: ExitCode.invalidEnv,
      hint: `set S3_BUCKET (the production bucket name) and DEV_S3_ENDPOINT in ${ctx.env.fileToFix}`,
    });
  const endpoint = ctx.env.get('DEV_S3_ENDPOINT') ?? (ctx.env.appEnv === 'development' ? ctx.env.get('S3_ENDPOINT') : undefined);
  if (!endpoint) {
    throw new TaskError(`DEV_S3_ENDPOINT is not set (APP_ENV=${ctx.env.appEnv}): refusing to touch the real bucket`, {
      exitCode: ExitCode.refused,
      hint: `set DEV_S3_ENDPOINT in ${ctx.env.fileToFix} to the development S3 server (MinIO, s3rver, …)`,
    });
  }
  return { bucket, prefix: ctx.env.get('S3_PREFIX') ?? '', endpoint, region: ctx.env.get('S3_REGION') };
}

/** Files under a folder, relative paths, sorted. */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(path.relative(dir, p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}

export const FIXTURES_DIR = 'storage/fixtures';

export const operatorTasks: AnyTask[] = [
  defineTask({
    name: 'doctor',
    description: 'Check Docker, Compose, Node, .env, S3, disk, cron and the last backup; one line each with its fix',
    group: 'setup',
    needsEnv: false,
    options: { json: { type: 'boolean', description: 'print { ok, checks: [{ name, ok, message, fix }] } for monitoring' } },
    example: 'tasks doctor --json',
    async run(ctx) {
      const { runChecks, formatReport } = await import('./doctor.ts');
      const reports = await runChecks(ctx);
      const failed = reports.filter((r) => !r.ok);
      if (ctx.opts.json) ctx.out.write(`${JSON.stringify({ ok: failed.length === 0, checks: reports }, null, 2)}\n`);
      else ctx.out.write(formatReport(reports));
      if (failed.length) {
        throw new TaskError(
          `doctor: ${failed.length} check${failed.length > 1 ? 's' : ''} failed (${failed.map((r) => r.name).join(', ')})`,
          { exitCode: ExitCode.prerequisite, hint: 'fix each line marked FAIL above, then run tasks doctor again' },
        );
      }
    },
  }),
  defineTask({
    name: 'setup',
    description:
      'A fresh server from clone to running: .env, doctor, pull, start, wait healthy, cron entry, first backup, status (safe to re-run)',
    group: 'setup',
    needsEnv: false,
    options: {
      noBackup: { type: 'boolean', description: 'skip the first backup' },
      noCron: { type: 'boolean', description: 'do not install the cron entry' },
    },
    example: 'tasks setup --env production',
    async run(ctx) {
      const { runChecks, formatReport } = await import('./doctor.ts');
      const { validateEnv, readTemplate, envProblemsError } = await import('../core/env.ts');
      const { compose } = await import('../tools/compose.ts');
      const { upAndWait, printStatus } = await import('./stack.ts');
      const skipBackup = ctx.opts.noBackup;
      const skipCron = ctx.opts.noCron;

      ctx.log.step('1/7 environment');
      if (!fs.existsSync(path.join(ctx.root, '.env'))) {
        if (ctx.runner.dryRun) ctx.log.info('[dry-run] would write .env from .env.template with generated secrets (tasks env-init)');
        else {
          await ctx.runTask('env-init');
          ctx.reloadEnv();
        }
      } else ctx.log.info('.env exists: kept as it is');
      const problems = await validateEnv(ctx.env, readTemplate(ctx.root));
      if (problems.length && !ctx.runner.dryRun) throw envProblemsError(ctx.env, problems);

      ctx.log.step('2/7 doctor');
      // In a dry run without .env, the file env-init would write is not there to check.
      const noEnvYet = ctx.runner.dryRun && !fs.existsSync(path.join(ctx.root, '.env'));
      const reports = await runChecks(ctx, { skipNeeds: ['cron', 'backup'], skip: noEnvYet ? ['env', 'env-permissions'] : [] });
      const failed = reports.filter((r) => !r.ok);
      ctx.log.info(formatReport(reports).trimEnd());
      if (failed.length && ctx.runner.dryRun) {
        // A dry run changes nothing: it says where the real run would stop, then shows the rest of the plan.
        ctx.log.warn(`[dry-run] the real setup would stop here: ${failed.map((r) => `${r.name}: ${r.message}`).join('; ')}`);
      } else if (failed.length) {
        throw new TaskError(`setup stopped: ${failed.map((r) => `${r.name}: ${r.message}`).join('; ')}`, {
          exitCode: ExitCode.prerequisite,
          hint: failed[0]?.fix,
        });
      }

      ctx.log.step('3/7 pull images');
      const p = await ctx.compose();
      try {
        await ctx.runner.run({ argv: compose.pull(p), stderr: 'capture' });
      } catch (err) {
        // No registry (air-gapped server, CI): fine when every image is already here.
        const services = (await ctx.services()).filter((s) => !s.build && !s.profiles.length && s.image);
        const missing: string[] = [];
        for (const s of services) {
          const r = await ctx.probe.run({
            argv: ['docker', 'image', 'inspect', '--format', '{{.Id}}', s.image!],
            stdout: 'ignore',
            stderr: 'ignore',
            okCodes: [0, 1],
          });
          if (r.code !== 0) missing.push(s.image!);
        }
        if (missing.length)
          throw new TaskError(`cannot pull ${missing.join(', ')} and not present locally: ${(err as Error).message}`, {
            exitCode: ExitCode.prerequisite,
            hint: 'check the registry access (docker login) or load the images (docker load)',
          });
        ctx.log.warn(`pull failed, using the local images (${services.map((s) => s.image).join(', ')}): ${(err as Error).message}`);
      }

      ctx.log.step('4/7 start and wait until healthy');
      await upAndWait(ctx);

      ctx.log.step('5/7 cron entry');
      if (skipCron) ctx.log.info('skipped (--no-cron)');
      else if (noEnvYet) ctx.log.info('[dry-run] would run: tasks cron-install');
      else await ctx.runTask('cron-install');

      ctx.log.step('6/7 first backup');
      if (skipBackup) ctx.log.info('skipped (--no-backup)');
      else if (noEnvYet) ctx.log.info('[dry-run] would run: tasks backup');
      else await ctx.runTask('backup');

      ctx.log.step('7/7 status');
      if (ctx.runner.dryRun) {
        ctx.log.info('[dry-run] would show the state and health of every service (tasks status)');
        ctx.log.success('[dry-run] nothing was changed; the real run would do the steps above');
        return;
      }
      const healthy = await printStatus(ctx);
      if (!healthy)
        throw new TaskError('setup finished but the stack is not healthy', { exitCode: ExitCode.unhealthy, hint: 'see: tasks logs' });
      ctx.log.success('setup done; check it any time with: tasks doctor');
    },
  }),
  defineTask({
    name: 'storage-reset',
    description: 'Empty the development object storage bucket (S3_BUCKET at DEV_S3_ENDPOINT); refused in production',
    group: 'setup',
    example: 'tasks storage-reset --yes',
    async run(ctx) {
      const { awsArgs } = await import('./doctor.ts');
      const { awsEnv } = await import('../tools/s3.ts');
      const s = devStorage(ctx);
      const url = `s3://${s.bucket}/${s.prefix}`;
      await ctx.confirm({ message: `This deletes every object under ${url} at ${s.endpoint}.` });
      await ctx.runner.run({ argv: awsArgs(s, ['s3', 'rm', '--recursive', '--only-show-errors', url]), env: awsEnv(s, ctx.env.values) });
      if (ctx.runner.dryRun) ctx.log.info(`[dry-run] would empty ${url} at ${s.endpoint}`);
      else ctx.log.success(`emptied ${url} at ${s.endpoint}`);
    },
  }),
  defineTask({
    name: 'storage-seed',
    description: `Upload ${FIXTURES_DIR}/** to the development object storage bucket; refused in production`,
    group: 'setup',
    example: 'tasks storage-seed',
    async run(ctx) {
      const { awsArgs } = await import('./doctor.ts');
      const { awsEnv } = await import('../tools/s3.ts');
      const s = devStorage(ctx);
      const dir = path.join(ctx.root, FIXTURES_DIR);
      const files = listFiles(dir);
      if (!files.length)
        throw usage(
          `no fixture files in ${FIXTURES_DIR}/`,
          `put the files the app expects in ${FIXTURES_DIR}/ (sub-folders become key prefixes)`,
        );
      const url = `s3://${s.bucket}/${s.prefix}`;
      await ctx.runner.run({
        argv: awsArgs(s, ['s3', 'cp', '--recursive', '--only-show-errors', dir, url]),
        env: awsEnv(s, ctx.env.values),
      });
      const what = `${files.length} file${files.length > 1 ? 's' : ''} to ${url} at ${s.endpoint}`;
      if (ctx.runner.dryRun) ctx.log.info(`[dry-run] would upload ${what}`);
      else ctx.log.success(`uploaded ${what}`);
    },
  }),
  defineTask({
    name: 'completion',
    description: 'Print the shell completion script (bash, zsh or fish); task names include the per-service targets',
    group: 'setup',
    needsEnv: false,
    args: { shell: { description: 'bash, zsh or fish', required: true } },
    example: 'source <(tasks completion bash)',
    async run(ctx) {
      const { completionScript, SHELLS } = await import('../core/completion.ts');
      const shell = ctx.args.shell as (typeof SHELLS)[number];
      if (!SHELLS.includes(shell)) throw usage(`unknown shell "${ctx.args.shell}": use one of ${SHELLS.join(', ')}`);
      ctx.out.write(completionScript(shell));
    },
  }),
];
