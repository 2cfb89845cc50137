// The backup store: the one folder backups live in, their names, the listing, free space, what "latest" means, the
// record of verified archives, durable publishing, and the one download (local or from S3) every task uses.
import fs from 'node:fs';
import path from 'node:path';
import type { TaskContext } from '../core/define.ts';
import { ExitCode, TaskError, refused, usage } from '../core/errors.ts';
import { formatBytes } from '../core/log.ts';
import { parseBackupName } from './manifest.ts';
import { FUTURE_TOLERANCE_MS } from './retention.ts';
import type { S3Settings } from '../tools/s3.ts';

// ---------------------------------------------------------------------------------------------
// The folder and the names

/** The backup folder: BACKUP_DIR (relative to the project), `backup` when unset or empty. */
export function backupDir(ctx: Pick<TaskContext, 'root' | 'env'>): string {
  return path.resolve(ctx.root, ctx.env.get('BACKUP_DIR') || 'backup');
}

export const archiveFile = (dir: string, name: string) => path.join(dir, `${name}.tar.gz`);

/** A backup name as typed: `x`, `x.tar.gz`, `x.tgz` or a path to one → the bare name (not checked). */
export function bareName(input: string): string {
  return path
    .basename(input.trim())
    .replace(/\.tar\.gz$/, '')
    .replace(/\.tgz$/, '');
}

/** A backup name from what a user typed (see bareName), refused unless it has the shape of one. */
export function normalizeName(arg: string): string {
  const name = bareName(arg);
  if (!parseBackupName(name))
    throw usage(`"${arg}" is not a backup name (expected <project>_backup_YYYY-MM-DD_HH-MM-SS)`, 'list them with: tasks backups');
  return name;
}

export interface LocalBackup {
  name: string;
  file: string;
  size: number;
  time: Date;
  project: string;
}

/** Complete local archives (temporary and hidden files never count), newest first by the time in their names. */
export function localBackups(dir: string): LocalBackup[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: LocalBackup[] = [];
  for (const f of names) {
    if (!f.endsWith('.tar.gz') || f.startsWith('.')) continue;
    const p = parseBackupName(f);
    if (!p) continue;
    const file = path.join(dir, f);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st?.isFile()) continue;
    out.push({ name: p.name, file, size: st.size, time: p.time, project: p.project });
  }
  return out.sort((a, b) => b.time.getTime() - a.time.getTime());
}

/** The newest backup by the time in its name (never by file mtime). */
export function newestName(names: string[]): string | undefined {
  let best: { name: string; t: number } | undefined;
  for (const n of names) {
    const p = parseBackupName(n);
    if (p && (!best || p.time.getTime() > best.t)) best = { name: p.name, t: p.time.getTime() };
  }
  return best?.name;
}

/** "latest" is never a backup dated after now: the clock went back, or the name was made by hand; the user names one instead. */
export function refuseFutureLatest(newest: string, now: Date): void {
  const p = parseBackupName(newest);
  if (!p || p.time.getTime() - now.getTime() <= FUTURE_TOLERANCE_MS) return;
  throw refused(
    `latest: the newest backup, ${newest}, is dated after now (${now.toISOString().replace(/\.\d+Z$/, 'Z')}): ` +
      'the clock or its name is wrong, so "latest" is not chosen',
    'name the backup to restore (tasks backups lists them), or set the clock right',
  );
}

/** Where a command looks for backups: here only (upload), in S3 only (download), or both (restore, verify). */
export type Where = 'local' | 's3' | 'both';

/**
 * What a name typed by the user means, the same for every task: "latest" is the newest backup of this project
 * (COMPOSE_PROJECT_NAME) by the time in its name, among the local ones and/or those in S3, never one dated after now;
 * anything else is a backup name (see normalizeName).
 */
export async function resolveName(ctx: TaskContext, input: string, where: Where): Promise<string> {
  if (bareName(input) !== 'latest') return normalizeName(input);
  const dir = backupDir(ctx);
  const project = ctx.env.get('COMPOSE_PROJECT_NAME');
  const ours = (n: string) => !project || parseBackupName(n)?.project === project;
  const names = where === 's3' ? [] : localBackups(dir).map((b) => b.name);
  const s = where === 'local' ? undefined : await s3Of(ctx);
  if (s) {
    const s3m = await import('../tools/s3.ts');
    try {
      names.push(...(await s3m.listRemote(ctx.probe, s)).map((o) => o.name));
    } catch (err) {
      if (where === 's3') throw err;
      ctx.log.warn(`S3 is not reachable (${(err as Error).message.split('\n')[0]}); choosing among local backups only`);
    }
  }
  const newest = newestName(names.filter(ours));
  if (!newest) {
    const places = [where !== 's3' ? path.relative(ctx.root, dir) || dir : '', s ? `s3://${s.bucket}/${s.prefix}` : '']
      .filter(Boolean)
      .join(' or ');
    throw new TaskError(`no backups${project ? ` of ${project}` : ''} found in ${places || 'S3 (S3_BUCKET is not set)'}`, {
      exitCode: ExitCode.usage,
      hint: 'make one first: tasks backup',
    });
  }
  refuseFutureLatest(newest, new Date());
  ctx.log.info(`latest backup: ${newest}`);
  return newest;
}

/** The S3 settings when a bucket is configured (no progress bars: this is used for reads). */
export async function s3Of(ctx: Pick<TaskContext, 'env'>): Promise<S3Settings | undefined> {
  return (await import('../tools/s3.ts')).s3Settings((k) => ctx.env.get(k) || undefined, false);
}

// ---------------------------------------------------------------------------------------------
// Space and durability

/** Free bytes for an unprivileged writer on the file system holding `dir` (or its nearest existing parent). */
export function freeBytes(dir: string): number {
  let d = path.resolve(dir);
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  const s = fs.statfsSync(d);
  return Number(s.bavail) * Number(s.bsize);
}

/** Refuses (exit 6, nothing changed) when `dir` has less than `need` bytes free for `doing` ("download x"). */
export function assertFree(
  dir: string,
  need: number,
  doing: string,
  hint = 'free some space (tasks prune) or set BACKUP_DIR to a larger disk; nothing was changed',
): void {
  const free = freeBytes(dir);
  if (free >= need) return;
  throw new TaskError(`not enough free space in ${dir} to ${doing}: ${formatBytes(need)} needed, ${formatBytes(free)} free`, {
    exitCode: ExitCode.prerequisite,
    hint,
  });
}

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Publishes a complete file under its final name durably: its bytes are fsynced before the rename (a crash after
 * it never leaves a final name over unwritten blocks), then the folder, so the rename itself is on disk before
 * anything (an upload, a prune) relies on it.
 */
export function publishDurably(tmp: string, final: string): void {
  fsyncPath(tmp);
  fs.renameSync(tmp, final);
  fsyncPath(path.dirname(final));
}

// ---------------------------------------------------------------------------------------------
// Verified archives

export interface VerifiedRecord {
  at: string;
  restoreTest: boolean;
  /** The archive's size when it was checked: prune counts it as good only while it still has it (scripts/backup/trust.ts). */
  size?: number;
}
const VERIFIED = '.verified.json';

export function readVerified(dir: string): Record<string, VerifiedRecord> {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, VERIFIED), 'utf8')) as Record<string, VerifiedRecord>;
  } catch {
    return {};
  }
}

export function recordVerified(dir: string, name: string, restoreTest: boolean, o: { size?: number; at?: Date } = {}): void {
  const all = readVerified(dir);
  all[name] = { at: (o.at ?? new Date()).toISOString(), restoreTest, ...(o.size !== undefined ? { size: o.size } : {}) };
  const tmp = path.join(dir, `${VERIFIED}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, path.join(dir, VERIFIED));
}

// ---------------------------------------------------------------------------------------------
// The download

/** A downloaded archive not yet under its final name; `publish` puts it there once the caller has checked it. */
export interface Download {
  name: string;
  file: string;
  publish(): string;
  discard(): void;
}

/** The partial file of a download by this process (the sweep removes those of dead ones). */
export const downloadTemp = (dir: string, name: string, pid = process.pid) => path.join(dir, `.${name}.tar.gz.download-${pid}`);

/**
 * The one download from S3: the object's size is read first (a missing object → `missing()`, the caller's error), the
 * free space checked, the archive fetched to a temp name and its size compared. With `check`, every member is then
 * verified against the manifest and the archive published; without it the caller verifies (restore does, while it
 * unpacks) and calls publish. A failure removes the partial file.
 */
export async function downloadArchive(
  ctx: TaskContext,
  s: S3Settings,
  name: string,
  o: { check: boolean; missing: () => Promise<TaskError> },
): Promise<Download> {
  const s3m = await import('../tools/s3.ts');
  const dir = backupDir(ctx);
  const key = s3m.objectKey(s, name);
  const size = await s3m.remoteSize(ctx.probe, s, key);
  if (size === undefined && !ctx.runner.dryRun) throw await o.missing();
  const tmp = downloadTemp(dir, name);
  const discard = () => fs.rmSync(tmp, { force: true });
  const dl: Download = { name, file: tmp, discard, publish: () => publishDownload(dir, name, tmp) };
  if (!ctx.runner.dryRun) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    assertFree(dir, size ?? 0, `download ${name}`);
  }
  ctx.onCleanup(discard);
  ctx.log.step(`downloading ${name} from ${s3m.s3Url(s, key)}`);
  try {
    await s3m.downloadFile(ctx.runner, s, key, tmp);
    if (ctx.runner.dryRun) return dl;
    fs.chmodSync(tmp, 0o600);
    const got = fs.statSync(tmp).size;
    if (got !== size)
      throw new TaskError(`download of ${name} is incomplete: ${got} of ${size} bytes`, {
        exitCode: ExitCode.uploadFailed,
        hint: 'retry; nothing was changed',
      });
    if (o.check) {
      ctx.log.step('checking every part against the manifest');
      await (await import('./archive.ts')).checkArchive(tmp, { signal: ctx.signal });
      dl.file = dl.publish();
    }
  } catch (err) {
    discard();
    throw ctx.signal.aborted ? (await import('../core/runner.ts')).abortError(ctx.signal) : err;
  }
  return dl;
}

function publishDownload(dir: string, name: string, tmp: string): string {
  const final = archiveFile(dir, name);
  publishDurably(tmp, final);
  recordVerified(dir, name, false, { size: fs.statSync(final).size });
  return final;
}
