// The crontab block for scheduled backups: cron-install, cron-remove, cron-status.
import fs from 'node:fs';
import path from 'node:path';
import { defineTask, type AnyTask, type TaskContext } from '../core/define.ts';
import { ExitCode, TaskError } from '../core/errors.ts';
import { shellQuote } from '../core/runner.ts';
import { backupDir } from '../backup/store.ts';
import { readOrUnknown } from '../tools/probe.ts';

export const DEFAULT_SCHEDULE = '0 2 */5 * *';

/**
 * The longest gap between two runs of a cron schedule (an upper bound, good enough to judge staleness); @keywords
 * too, @reboot has none.
 */
export function cronPeriodMs(expr: string): number | undefined {
  const keyword = { '@hourly': 3600_000, '@daily': 86400_000, '@midnight': 86400_000, '@weekly': 7 * 86400_000 }[expr.trim()];
  if (keyword) return keyword;
  if (/^@(monthly)$/.test(expr.trim())) return 31 * 86400_000;
  if (/^@(yearly|annually)$/.test(expr.trim())) return 366 * 86400_000;
  const f = expr.trim().split(/\s+/);
  if (f.length !== 5) return undefined;
  const [min, hour, dom, mon, dow] = f as [string, string, string, string, string];
  const H = 3600_000;
  const D = 24 * H;
  const step = (field: string) => /^\*\/(\d+)$/.exec(field)?.[1];
  if (mon !== '*') return 366 * D;
  if (step(dom)) return Number(step(dom)) * D;
  if (dom !== '*') return 31 * D;
  if (dow !== '*') return 7 * D;
  if (step(hour)) return Number(step(hour)) * H;
  if (hour !== '*') return D;
  if (step(min)) return Number(step(min)) * 60_000;
  return min === '*' ? 60_000 : H;
}

/** Prune deletes nothing when the newest earlier backup is older than this many periods of the schedule (scripts/backup/retention.ts). */
export const PRUNE_GAP_PERIODS = 3;

/** BACKUP_CRON (or the default) and its longest gap between runs; the default schedule's when it has none (@reboot). */
export function backupSchedule(get: (k: string) => string | undefined): { schedule: string; periodMs: number } {
  const schedule = get('BACKUP_CRON') ?? DEFAULT_SCHEDULE;
  return { schedule, periodMs: cronPeriodMs(schedule) ?? cronPeriodMs(DEFAULT_SCHEDULE)! };
}

export const beginMarker = (project: string) => `# BEGIN ${project} tasks`;
export const endMarker = (project: string) => `# END ${project} tasks`;

export interface CronSpec {
  project: string;
  schedule: string;
  root: string;
  node: string;
  bin: string;
  /** Appended to (stdout and stderr). */
  logFile: string;
  /** flock -n on this file: a run still going when the next starts makes the next exit at once. */
  lockFile: string;
  /** PATH for the job: cron's own is /usr/bin:/bin (no docker, aws or pg tools elsewhere). */
  pathDirs: string[];
  /** --env <name>, when the block was installed for a given APP_ENV. */
  appEnv?: string;
}

/** Five fields, each made of cron characters; or an @keyword. */
export function validSchedule(s: string): boolean {
  if (/^@(reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)$/.test(s.trim())) return true;
  const f = s.trim().split(/\s+/);
  return f.length === 5 && f.every((x) => /^[\d*/,\-A-Za-z]+$/.test(x));
}

/** `%` ends the command in a crontab line (the rest becomes stdin): escape it. */
const cronEscape = (s: string) => s.replace(/%/g, '\\%');
const q = (s: string) => cronEscape(shellQuote(s));

/** The crontab line that runs a scheduled backup, under cron's minimal environment (and whatever HOME it has). */
export function cronCommand(c: CronSpec): string {
  const pathValue = [...new Set(c.pathDirs)].join(':');
  // The folders of the log and the lock first: removed by hand since cron-install, the `>>` would fail before the backup
  // even starts, and its error would go to cron's local mail only, where nobody reads it.
  const dirs = [...new Set([path.dirname(c.logFile), path.dirname(c.lockFile)])];
  return [
    'mkdir',
    '-p',
    '-m',
    '700',
    ...dirs.map(q),
    '&&',
    'cd',
    q(c.root),
    '&&',
    `PATH=${q(pathValue)}`,
    'flock',
    '-n',
    q(c.lockFile),
    q(c.node),
    q(c.bin),
    'backup',
    '--reason',
    'scheduled',
    ...(c.appEnv ? ['--env', q(c.appEnv)] : []),
    '>>',
    q(c.logFile),
    '2>&1',
  ].join(' ');
}

/** The whole block, markers included. */
export function cronBlock(c: CronSpec): string {
  return [
    beginMarker(c.project),
    `# Scheduled backup of ${c.project}, written by \`tasks cron-install\`; remove with \`tasks cron-remove\`.`,
    `${c.schedule.trim()} ${cronCommand(c)}`,
    endMarker(c.project),
  ].join('\n');
}

/** The crontab with this project's block removed (and `block` appended, when given). Other lines are kept as they are. */
export function replaceBlock(crontab: string, project: string, block?: string): string {
  const lines = crontab.split('\n');
  const out: string[] = [];
  let inside = false;
  for (const line of lines) {
    if (line.trim() === beginMarker(project)) {
      inside = true;
      continue;
    }
    if (inside && line.trim() === endMarker(project)) {
      inside = false;
      continue;
    }
    if (!inside) out.push(line);
  }
  while (out.length && out[out.length - 1]!.trim() === '') out.pop();
  if (block) out.push(block);
  return out.length ? `${out.join('\n')}\n` : '';
}

/** This project's block in a crontab, or undefined. */
export function findBlock(crontab: string, project: string): string | undefined {
  const lines = crontab.split('\n');
  const start = lines.findIndex((l) => l.trim() === beginMarker(project));
  if (start < 0) return undefined;
  const end = lines.findIndex((l, i) => i > start && l.trim() === endMarker(project));
  return lines.slice(start, end < 0 ? undefined : end + 1).join('\n');
}

const TOOLS = ['node', 'docker', 'docker-compose', 'aws', 'pg_dump', 'pg_restore', 'psql', 'flock', 'tar', 'git'];
const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Folders of the tools found on PATH now, then the system ones. */
export function toolDirs(
  envPath: string,
  exists: (p: string) => boolean = (p) => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  },
): { dirs: string[]; missing: string[] } {
  const search = envPath.split(':').filter((d) => d && path.isAbsolute(d));
  const dirs: string[] = [];
  const missing: string[] = [];
  for (const tool of TOOLS) {
    const dir = search.find((d) => exists(path.join(d, tool)));
    if (dir) {
      if (!dirs.includes(dir)) dirs.push(dir);
    } else missing.push(tool);
  }
  for (const d of SYSTEM_PATH) if (!dirs.includes(d)) dirs.push(d);
  return { dirs, missing };
}

async function readCrontab(ctx: TaskContext): Promise<string> {
  return readOrUnknown(
    ctx,
    'your crontab',
    async () => {
      const r = await ctx.probe.run({ argv: ['crontab', '-l'], stdout: 'capture', stderr: 'capture', okCodes: [0, 1] });
      if (r.code === 1) {
        if (/no crontab/i.test(r.stderr)) return '';
        throw new TaskError(`crontab -l failed: ${r.stderr.trim()}`, { exitCode: ExitCode.prerequisite });
      }
      return r.stdout;
    },
    '',
  );
}

async function writeCrontab(ctx: TaskContext, text: string): Promise<void> {
  if (text.trim() === '') {
    await ctx.runner.run({ argv: ['crontab', '-r'], stderr: 'capture', okCodes: [0, 1] });
    return;
  }
  await ctx.runner.run({ argv: ['crontab', '-'], stdin: { text }, stderr: 'capture' });
}

function spec(ctx: TaskContext): CronSpec {
  const project = ctx.env.require('COMPOSE_PROJECT_NAME');
  const schedule = ctx.env.get('BACKUP_CRON') ?? DEFAULT_SCHEDULE;
  if (!validSchedule(schedule))
    throw new TaskError(`BACKUP_CRON is not a cron schedule: "${schedule}"`, {
      exitCode: ExitCode.invalidEnv,
      hint: `five fields, e.g. ${DEFAULT_SCHEDULE}; fix it in ${ctx.env.fileToFix}`,
    });
  const { dirs, missing } = toolDirs(ctx.env.get('PATH') ?? '');
  for (const m of missing.filter((t) => ['flock', 'tar'].includes(t)))
    throw new TaskError(`${m} is not installed: the scheduled backup needs it`, { exitCode: ExitCode.prerequisite });
  for (const m of missing.filter((t) => ['aws'].includes(t)))
    if (ctx.env.get('S3_BUCKET')) ctx.log.warn(`${m} is not on PATH: the scheduled upload will fail`);
  const node = ctx.config.nodePath ?? dirs.map((d) => path.join(d, 'node')).find((p) => fs.existsSync(p)) ?? 'node';
  return {
    project,
    schedule,
    root: ctx.root,
    node,
    bin: path.join(ctx.root, 'bin', 'tasks.mjs'),
    logFile: path.resolve(ctx.root, ctx.env.get('BACKUP_LOG') ?? 'backup/cron.log'),
    lockFile: path.join(backupDir(ctx), '.cron.lock'),
    pathDirs: [path.dirname(node), ...dirs],
    ...(ctx.global.env ? { appEnv: ctx.global.env } : {}),
  };
}

const cronInstall = defineTask({
  name: 'cron-install',
  description:
    'Schedule backups in your crontab (BACKUP_CRON; default 02:00 on days 1, 6, 11, … 31 of each month); ' +
    'running it again updates the block',
  group: 'backups',
  async run(ctx) {
    const s = spec(ctx);
    const gap = (await import('../core/notify.ts')).notifyGap((k) => ctx.env.get(k), ctx.env.appEnv);
    if (gap) ctx.log.warn(`${gap.message}; ${gap.fix.replace('.env', ctx.env.fileToFix)}`);
    const block = cronBlock(s);
    const current = await readCrontab(ctx);
    const next = replaceBlock(current, s.project, block);
    if (next === current) {
      ctx.log.success(`crontab already up to date:\n${block}`);
      return;
    }
    if (!ctx.global.dryRun) {
      fs.mkdirSync(path.dirname(s.logFile), { recursive: true, mode: 0o700 });
      fs.mkdirSync(path.dirname(s.lockFile), { recursive: true, mode: 0o700 });
    }
    await writeCrontab(ctx, next);
    const done = findBlock(current, s.project) ? 'updated' : 'installed';
    if (ctx.global.dryRun) ctx.log.info(`[dry-run] would have ${done} this block in your crontab:\n${block}`);
    else ctx.log.success(`${done} in your crontab:\n${block}`);
    ctx.log.info(`output goes to ${s.logFile}; check with: tasks cron-status`);
  },
});

const cronRemove = defineTask({
  name: 'cron-remove',
  description: 'Remove the scheduled backup block from your crontab (other lines are kept)',
  group: 'backups',
  async run(ctx) {
    const project = ctx.env.require('COMPOSE_PROJECT_NAME');
    const current = await readCrontab(ctx);
    if (!findBlock(current, project)) {
      ctx.log.info(`no ${project} block in your crontab: nothing to remove`);
      return;
    }
    await writeCrontab(ctx, replaceBlock(current, project));
    if (ctx.global.dryRun) ctx.log.info(`[dry-run] would remove the ${project} block from your crontab`);
    else ctx.log.success(`removed the ${project} block from your crontab`);
  },
});

const cronStatus = defineTask({
  name: 'cron-status',
  description: 'Show the scheduled backup block, and the end of its log',
  group: 'backups',
  async run(ctx) {
    const project = ctx.env.require('COMPOSE_PROJECT_NAME');
    const block = findBlock(await readCrontab(ctx), project);
    if (!block) {
      ctx.out.write(`not installed (tasks cron-install adds it)\n`);
      return;
    }
    ctx.out.write(`installed:\n${block}\n`);
    const expected = cronBlock(spec(ctx));
    if (expected !== block) ctx.log.warn('the installed block differs from the current settings: run tasks cron-install to update it');
    const logFile = path.resolve(ctx.root, ctx.env.get('BACKUP_LOG') ?? 'backup/cron.log');
    const st = fs.statSync(logFile, { throwIfNoEntry: false });
    if (!st) {
      ctx.out.write(`log: ${logFile} (no run yet)\n`);
      return;
    }
    const tail = fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean).slice(-5).join('\n');
    ctx.out.write(`log: ${logFile} (last written ${st.mtime.toISOString()})\n${tail}\n`);
  },
});

export const cronTasks: AnyTask[] = [cronInstall, cronRemove, cronStatus];
