// `tasks doctor`: the prerequisite checks as data (one entry each), run in order, each answering in one line with its fix.
import fs from 'node:fs';
import path from 'node:path';
import { compose, type Flavor } from '../tools/compose.ts';
import { cronPeriodMs, PRUNE_GAP_PERIODS } from './cron.ts';
import { FUTURE_TOLERANCE_MS } from '../backup/retention.ts';
import { maxGapMs } from '../backup/trust.ts';
import { backupDir, freeBytes, localBackups } from '../backup/store.ts';
import { readTemplate, validateEnv, worldReadableEnvFiles } from '../core/env.ts';
import { CommandError } from '../core/errors.ts';
import { formatBytes, formatDuration } from '../core/log.ts';
import type { TaskContext } from '../core/define.ts';
import type { Cmd } from '../core/runner.ts';
import { awsEnv } from '../tools/s3.ts';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  status: CheckStatus;
  message: string;
  /** One line: what to do about a failure or a warning. */
  fix?: string;
}

/** What a check may need; `setup` skips the ones whose need is not met yet. */
export type CheckNeed = 'cron' | 'backup';

export interface Check {
  name: string;
  needs?: CheckNeed[];
  run(d: DoctorState): Promise<CheckResult>;
}

/** Facts shared between checks of one run (so a missing docker binary skips the engine check). */
export interface DoctorState {
  ctx: TaskContext;
  /** Set by the docker check. */
  dockerPath?: string;
  flavor?: Flavor;
  /** Set by the engine check: which engine, local or remote, and where that came from. */
  engine?: import('../tools/engine.ts').Engine;
  now: Date;
}

export interface CheckReport {
  name: string;
  ok: boolean;
  status: CheckStatus;
  message: string;
  fix?: string;
}

const ok = (message: string): CheckResult => ({ status: 'ok', message });
const fail = (message: string, fix: string): CheckResult => ({ status: 'fail', message, fix });
const warn = (message: string, fix: string): CheckResult => ({ status: 'warn', message, fix });
const skip = (message: string): CheckResult => ({ status: 'skip', message });

/** The absolute path of an executable found on PATH, like `command -v` (no process started). */
export function findOnPath(name: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      const st = fs.statSync(file);
      if (st.isFile() && (st.mode & 0o111) !== 0) return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export { cronPeriodMs };

/** How old something scheduled may get before it counts as missed: one period, a quarter more, and an hour. */
export const allowedAgeMs = (periodMs: number) => periodMs * 1.25 + 3600_000;

/** Argv prefix for the aws CLI against the configured bucket (endpoint and region when set). */
export function awsArgs(env: { endpoint?: string; region?: string }, args: string[]): string[] {
  return ['aws', ...(env.endpoint ? ['--endpoint-url', env.endpoint] : []), ...(env.region ? ['--region', env.region] : []), ...args];
}

/** An age or period for people: days or hours when long, else what formatDuration says. */
export function formatAge(ms: number): string {
  if (ms >= 2 * 86400_000) return `${(ms / 86400_000).toFixed(1)} days`;
  if (ms >= 2 * 3600_000) return `${(ms / 3600_000).toFixed(1)} hours`;
  return formatDuration(ms);
}

const lastLine = (s: string) => s.trim().split('\n').filter(Boolean).slice(-1)[0] ?? '';
const errText = (err: unknown) => (err instanceof CommandError ? lastLine(err.stderrTail) || err.message : (err as Error).message);
const projectName = (ctx: TaskContext) => ctx.env.get('COMPOSE_PROJECT_NAME') ?? 'odoo';
const schedule = (ctx: TaskContext) => ctx.env.get('BACKUP_CRON') ?? '0 2 */5 * *';

/** Every check, in order. Adding one is adding an entry. */
export const checks: Check[] = [
  {
    name: 'docker',
    async run(d) {
      const p = findOnPath('docker', d.ctx.env.values.PATH);
      if (!p)
        return fail(
          'docker not found on PATH',
          'install Docker Engine: https://docs.docker.com/engine/install/ (Debian: apt-get install docker.io)',
        );
      d.dockerPath = p;
      return ok(`docker at ${p}`);
    },
  },
  {
    name: 'compose',
    async run(d) {
      if (!d.dockerPath && !findOnPath('docker-compose', d.ctx.env.values.PATH)) return skip('needs docker');
      const forced = d.ctx.env.get('COMPOSE_CMD')?.trim();
      const flavors: Flavor[] =
        forced === 'docker compose' || forced === 'v2' ? ['v2'] : forced === 'docker-compose' || forced === 'v1' ? ['v1'] : ['v2', 'v1'];
      for (const f of flavors) {
        try {
          const r = await d.ctx.probe.run({ argv: compose.version(f), stdout: 'capture', stderr: 'capture', timeoutMs: 30_000 });
          d.flavor = f;
          return ok(`${f === 'v2' ? 'docker compose' : 'docker-compose'} ${r.stdout.trim() || '(version unknown)'} (${f})`);
        } catch {
          /* try the next one */
        }
      }
      return fail(
        forced ? `COMPOSE_CMD="${forced}" does not run` : 'Docker Compose not found: neither `docker compose` nor `docker-compose` runs',
        'install the compose plugin (apt-get install docker-compose-plugin) or docker-compose, or fix COMPOSE_CMD in .env',
      );
    },
  },
  {
    name: 'engine',
    async run(d) {
      if (!d.dockerPath) return skip('needs docker');
      const engineMod = await import('../tools/engine.ts');
      let e: import('../tools/engine.ts').Engine;
      try {
        e = await engineMod.describeEngine(d.ctx.probe, d.ctx.env.values, path.join(d.ctx.root, '.cache', 'compose-tasks'));
      } catch (err) {
        return fail((err as Error).message, (err as { hint?: string }).hint ?? 'docker context ls');
      }
      d.engine = e;
      const which = engineMod.describeEngineText(e);
      try {
        const r = await d.ctx.probe.run({
          argv: ['docker', 'info', '--format', '{{.ServerVersion}}'],
          stdout: 'capture',
          stderr: 'capture',
          timeoutMs: 30_000,
        });
        return ok(`Docker engine ${r.stdout.trim()} is running: ${which}`);
      } catch (err) {
        const text = err instanceof CommandError ? err.stderrTail : String(err);
        if (e.remote)
          return fail(
            `cannot reach the ${which}: ${errText(err)}`,
            /^ssh:/i.test(e.endpoint)
              ? `check the connection: ${engineMod.sshCommand(e.endpoint)} docker info (key, host name, the user in the docker group)`
              : `check that ${e.endpoint} answers (firewall, TLS settings: DOCKER_TLS_VERIFY, DOCKER_CERT_PATH)`,
          );
        if (/permission denied/i.test(text))
          return fail(
            'no permission to use the Docker engine',
            'add your user to the docker group (sudo usermod -aG docker $USER, then log in again) or run as root',
          );
        if (/Cannot connect to the Docker daemon|Is the docker daemon running|error during connect/i.test(text)) {
          return fail(
            'the Docker engine is not running',
            'start it: sudo systemctl start docker (no systemd: sudo dockerd > /var/log/dockerd.log 2>&1 &)',
          );
        }
        return fail(`docker info failed: ${errText(err)}`, 'check the Docker engine: sudo systemctl status docker');
      }
    },
  },
  {
    name: 'compose-ssh',
    async run(d) {
      const engineMod = await import('../tools/engine.ts');
      if (!d.flavor || !d.engine || !engineMod.needsParamiko(d.flavor, d.engine))
        return skip('not needed (only Compose v1 with an ssh:// engine needs paramiko)');
      const c = await engineMod.checkParamiko(d.ctx.probe, d.ctx.env.values, path.join(d.ctx.root, '.cache', 'compose-tasks'));
      return c.ok
        ? ok(`Compose v1 can reach ${d.engine.endpoint}: paramiko imports (${c.detail})`)
        : fail(`${engineMod.PARAMIKO_REFUSAL} (${c.detail})`, 'apt-get install python3-paramiko, or install Compose v2 (docker compose)');
    },
  },
  {
    name: 'node',
    async run() {
      const major = Number(process.versions.node.split('.')[0]);
      return major >= 20
        ? ok(`Node ${process.versions.node}`)
        : fail(
            `Node ${process.versions.node} is too old (20 or newer needed)`,
            'install Node 20 LTS: https://nodejs.org/ (or nvm install 20)',
          );
    },
  },
  {
    name: 'env',
    async run(d) {
      const { ctx } = d;
      if (!ctx.env.files.length) return fail('no .env file', 'create it: tasks env-init (or tasks setup)');
      const problems = await validateEnv(ctx.env, readTemplate(ctx.root));
      if (problems.length)
        return fail(
          `invalid environment (${ctx.env.appEnv}): ${problems.map((p) => `${p.key} ${p.problem}`).join('; ')}`,
          `fix ${ctx.env.fileToFix} (every key is documented in .env.template)`,
        );
      return ok(`${ctx.env.files.join(', ')} valid for APP_ENV=${ctx.env.appEnv}`);
    },
  },
  {
    name: 'env-permissions',
    async run(d) {
      const open = worldReadableEnvFiles(d.ctx.root, d.ctx.env.files);
      if (open.length) return fail(`${open.join(', ')} readable by other users (it holds passwords)`, `chmod 600 ${open.join(' ')}`);
      return d.ctx.env.files.length ? ok(`${d.ctx.env.files.join(', ')} readable by the owner only`) : skip('no env file');
    },
  },
  {
    name: 'disk',
    async run(d) {
      const dir = backupDir(d.ctx);
      const free = freeBytes(dir);
      const last = localBackups(dir)[0];
      if (!last) return ok(`${formatBytes(free)} free for ${path.relative(d.ctx.root, dir) || '.'}; no backup yet to size against`);
      const need = last.size * 2;
      if (free < need)
        return fail(
          `${formatBytes(free)} free in ${dir}, but twice the last backup (${formatBytes(last.size)}) needs ${formatBytes(need)}`,
          'free disk space, lower BACKUP_RETENTION_DAYS (then tasks prune), or point BACKUP_DIR at a larger disk',
        );
      return ok(`${formatBytes(free)} free, twice the last backup is ${formatBytes(need)}`);
    },
  },
  {
    name: 's3',
    async run(d) {
      const { ctx } = d;
      const bucket = ctx.env.get('S3_BUCKET');
      if (!bucket) return skip('S3_BUCKET not set: backups stay local');
      if (!findOnPath('aws', ctx.env.values.PATH))
        return fail('aws CLI not found on PATH (S3_BUCKET is set)', 'install it: apt-get install awscli (or https://aws.amazon.com/cli/)');
      const where = { endpoint: ctx.env.get('S3_ENDPOINT'), region: ctx.env.get('S3_REGION') };
      const key = `${ctx.env.get('S3_PREFIX') ?? ''}.doctor-${d.now.getTime()}`;
      const url = `s3://${bucket}/${key}`;
      const text = `compose-tasks doctor ${d.now.toISOString()}\n`;
      const base: Omit<Cmd, 'argv'> = { env: awsEnv(where, ctx.env.values, { attempts: 2 }), stderr: 'capture', timeoutMs: 90_000 };
      const opts = ['--only-show-errors', '--cli-connect-timeout', '10', '--cli-read-timeout', '30'];
      const target = `${where.endpoint ? `${where.endpoint} ` : ''}s3://${bucket}`;
      if (ctx.runner.dryRun) {
        ctx.log.emit({ kind: 'cmd', display: ctx.runner.display({ argv: awsArgs(where, ['s3', 'cp', ...opts, '-', url]) }), dryRun: true });
        return skip(`dry-run: would write, read and delete ${url}`);
      }
      let step = 'write';
      try {
        await ctx.runner.run({ ...base, argv: awsArgs(where, ['s3', 'cp', ...opts, '-', url]), stdin: { text }, stdout: 'ignore' });
        step = 'read';
        const back = await ctx.runner.run({ ...base, argv: awsArgs(where, ['s3', 'cp', ...opts, url, '-']), stdout: 'capture' });
        if (back.stdout !== text)
          return fail(
            `${target}: the object read back differs from the one written`,
            'check the endpoint and any proxy in between (R2: set S3_REGION=auto)',
          );
        step = 'delete';
        await ctx.runner.run({ ...base, argv: awsArgs(where, ['s3', 'rm', ...opts, url]), stdout: 'ignore' });
        return ok(`${target}: write, read and delete of a test object work`);
      } catch (err) {
        const msg = errText(err);
        const fix = /Could not connect|Connection refused|Connect timeout|Name or service not known|ConnectionError/i.test(msg)
          ? `check S3_ENDPOINT (${where.endpoint ?? 'AWS default'}) and the network`
          : /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|credentials/i.test(msg)
            ? 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE): the key needs read, write and delete on the bucket'
            : /NoSuchBucket/i.test(msg)
              ? `create the bucket ${bucket} or fix S3_BUCKET`
              : /NotImplemented|checksum/i.test(msg)
                ? 'R2: AWS_REQUEST_CHECKSUM_CALCULATION=when_required is needed (the tasks set it; check your aws CLI version)'
                : 'check the S3_* settings in .env';
        return fail(`${target}: cannot ${step} a test object: ${msg}`, fix);
      }
    },
  },
  {
    name: 'notify',
    async run(d) {
      const { notifyGap, notifyChannels, notifySettings } = await import('../core/notify.ts');
      const get = (k: string) => d.ctx.env.get(k);
      const gap = notifyGap(get, d.ctx.env.appEnv);
      if (gap) return warn(gap.message, gap.fix.replace('.env', d.ctx.env.fileToFix));
      const channels = notifyChannels(notifySettings(get, true));
      return channels.length
        ? ok(`a failed backup is reported to ${channels.join(', ')}`)
        : skip(`no NOTIFY_URL, NOTIFY_SMTP_URL or HEALTHCHECK_URL (needed in production; this is ${d.ctx.env.appEnv})`);
    },
  },
  {
    name: 'cron',
    needs: ['cron'],
    async run(d) {
      const { ctx } = d;
      const dev = ctx.env.appEnv === 'development';
      if (!findOnPath('crontab', ctx.env.values.PATH)) {
        return dev
          ? skip('crontab not installed (not needed in development)')
          : fail('crontab not found: scheduled backups cannot run', 'install cron: apt-get install cron, then tasks cron-install');
      }
      const r = await ctx.probe.run({ argv: ['crontab', '-l'], stdout: 'capture', stderr: 'capture', okCodes: [0, 1] });
      const marker = `# BEGIN ${projectName(ctx)} tasks`;
      if (!r.stdout.includes(marker)) {
        return dev
          ? skip('no backup schedule installed (not needed in development)')
          : fail(`no cron entry for project ${projectName(ctx)} ("${marker}" not in crontab -l)`, 'install it: tasks cron-install');
      }
      const period = cronPeriodMs(schedule(ctx));
      const log = path.resolve(ctx.root, ctx.env.get('BACKUP_LOG') ?? 'backup/cron.log');
      let mtime: Date | undefined;
      try {
        mtime = fs.statSync(log).mtime;
      } catch {
        /* never written */
      }
      if (!mtime)
        return warn(
          `cron entry installed (${schedule(ctx)}), its log ${log} not written yet`,
          'if a scheduled run is already due, check that cron runs: systemctl status cron (or service cron start)',
        );
      const age = d.now.getTime() - mtime.getTime();
      if (period !== undefined && age > allowedAgeMs(period)) {
        return fail(
          `cron log ${log} last written ${formatAge(age)} ago, schedule "${schedule(ctx)}" runs at least every ${formatAge(period)}`,
          'check that the cron daemon runs (systemctl status cron) and read the end of the log',
        );
      }
      return ok(`cron entry installed (${schedule(ctx)}), log written ${formatAge(age)} ago`);
    },
  },
  {
    name: 'last-backup',
    needs: ['backup'],
    async run(d) {
      const { ctx } = d;
      const dev = ctx.env.appEnv === 'development';
      const dir = backupDir(ctx);
      const last = localBackups(dir)[0];
      if (!last) return dev ? skip('no backup yet') : fail(`no backup in ${dir}`, 'take one now: tasks backup');
      const age = d.now.getTime() - last.time.getTime();
      const period = cronPeriodMs(schedule(ctx));
      if (-age > FUTURE_TOLERANCE_MS)
        return (dev ? warn : fail)(
          `last backup ${last.name} is dated ${formatAge(-age)} after now: the clock looks wrong; prune deletes nothing`,
          'set the clock right (timedatectl set-ntp true)',
        );
      // Past this gap prune deletes nothing (scripts/backup/retention.ts): the clock jumped ahead or backups stopped.
      const held = age > maxGapMs((k) => ctx.env.get(k)) ? '; prune deletes nothing until a new backup' : '';
      if (!dev && period !== undefined && age > allowedAgeMs(period)) {
        return fail(
          `last backup ${last.name} is ${formatAge(age)} old; ` +
            `the schedule "${schedule(ctx)}" runs at least every ${formatAge(period)}${held}`,
          'check the cron log (BACKUP_LOG) for the failure, then run: tasks backup',
        );
      }
      if (held)
        return warn(
          `last backup ${last.name} is ${formatAge(age)} old, more than ${PRUNE_GAP_PERIODS} periods of "${schedule(ctx)}"${held}`,
          'check the clock (timedatectl) and the cron log (BACKUP_LOG), then run: tasks backup',
        );
      return ok(`last backup ${last.name} (${formatBytes(last.size)}, ${formatAge(Math.max(0, age))} old)`);
    },
  },
  {
    name: 'unfinished-change',
    async run(d) {
      const dir = backupDir(d.ctx);
      const { describeUnfinished, readUnfinished } = await import('../core/journal.ts');
      const [first, ...more] = readUnfinished(dir);
      if (!first) return ok('no interrupted change');
      const others = more.length ? ` (and ${more.length} more)` : '';
      return fail(
        `${describeUnfinished(first)}${others}`,
        'its journal names each step and what it changed: put those back by hand, then remove the journal',
      );
    },
  },
];

/** Runs the checks in order; `skipNeeds` leaves out the checks that need something not there yet (setup before cron-install). */
export async function runChecks(
  ctx: TaskContext,
  opts: { skipNeeds?: CheckNeed[]; only?: string[]; skip?: string[]; now?: Date } = {},
): Promise<CheckReport[]> {
  const state: DoctorState = { ctx, now: opts.now ?? new Date() };
  const out: CheckReport[] = [];
  for (const c of checks) {
    if (opts.only && !opts.only.includes(c.name)) continue;
    if (opts.skip?.includes(c.name)) continue;
    if (c.needs?.some((n) => opts.skipNeeds?.includes(n))) continue;
    let r: CheckResult;
    try {
      r = await c.run(state);
    } catch (err) {
      r = fail(`${c.name} check crashed: ${errText(err)}`, 'report this with the output of tasks doctor');
    }
    out.push({
      name: c.name,
      ok: r.status !== 'fail',
      status: r.status,
      message: ctx.log.mask(r.message),
      ...(r.fix ? { fix: r.fix } : {}),
    });
  }
  return out;
}

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

/** One line per check, the fix indented under a failure or warning. */
export function formatReport(reports: CheckReport[]): string {
  const width = Math.max(...reports.map((r) => r.name.length));
  return reports
    .map(
      (r) =>
        `[${MARK[r.status]}] ${r.name.padEnd(width)}  ${r.message}` +
        `${r.fix && r.status !== 'ok' ? `\n${' '.repeat(width + 9)}fix: ${r.fix}` : ''}\n`,
    )
    .join('');
}
