// Backup tasks: backup, backups, verify, prune, upload, download (plus the helpers restore uses to find and fetch a backup).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineTask, type AnyTask, type BackupPart, type TaskContext } from '../core/define.ts';
import { CommandError, ExitCode, TaskError, usage } from '../core/errors.ts';
import { abortError, followFile } from '../core/runner.ts';
import { journalHooks, openJournal } from '../core/journal.ts';
import { parallel, runPlan, type PlanHooks, type Step } from '../core/plan.ts';
import { readOrUnknown } from '../tools/probe.ts';
import {
  backupName,
  parseBackupName,
  selectParts,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type Manifest,
  type ManifestPart,
} from './manifest.ts';
import { formatBytes, formatDuration } from '../core/log.ts';
import type { S3Settings, RemoteObject } from '../tools/s3.ts';
import type { PgTarget } from '../tools/postgres.ts';
import type { PrunePlan } from './retention.ts';
import {
  archiveFile,
  assertFree,
  backupDir,
  downloadArchive,
  localBackups,
  publishDurably,
  readVerified,
  recordVerified,
  resolveName,
  type LocalBackup,
  type VerifiedRecord,
} from './store.ts';

// Heavier modules load only when a backup task runs (`tasks --list` start-up stays fast).
const mods = {
  archive: () => import('./archive.ts'),
  s3: () => import('../tools/s3.ts'),
  pg: () => import('../tools/postgres.ts'),
  notify: () => import('../core/notify.ts'),
  retention: () => import('./retention.ts'),
  compose: () => import('../tools/compose.ts'),
  engine: () => import('../tools/engine.ts'),
};

async function s3For(ctx: TaskContext): Promise<S3Settings | undefined> {
  return (await mods.s3()).s3Settings((k) => ctx.env.get(k), ctx.log.isTTY);
}

function credentialsProblem(ctx: TaskContext, s3m: typeof import('../tools/s3.ts')): string | undefined {
  return s3m.missingCredentials(
    (k) => ctx.env.get(k),
    ctx.env.get('HOME') ?? os.homedir(),
    (p) => fs.existsSync(p),
  );
}

/** S3 settings that must work (download, upload): explains what is missing with exit code 4. */
async function requireS3(ctx: TaskContext): Promise<S3Settings> {
  const s3m = await mods.s3();
  const s = await s3For(ctx);
  if (!s)
    throw new TaskError('S3_BUCKET is not set: there is no remote storage', {
      exitCode: ExitCode.invalidEnv,
      hint: `set S3_BUCKET (and S3_ENDPOINT for R2/MinIO) in ${ctx.env.fileToFix}`,
    });
  const missing = credentialsProblem(ctx, s3m);
  if (missing)
    throw new TaskError(missing, { exitCode: ExitCode.invalidEnv, hint: `set them in ${ctx.env.fileToFix} (documented in .env.template)` });
  return s;
}

/** Turns an interruption seen by Node streams (AbortError) into exit 130/143. */
function interrupted(ctx: TaskContext, err: unknown): unknown {
  if (ctx.signal.aborted) return abortError(ctx.signal);
  return err;
}

/** A throttled progress reporter: a live line in a terminal, a timestamped line every 10 s otherwise. */
function progress(ctx: TaskContext, label: string, total?: number): (bytes: number) => void {
  const started = Date.now();
  let last = 0;
  const every = ctx.log.isTTY ? 250 : 10_000;
  return (bytes) => {
    const now = Date.now();
    if (now - last < every) return;
    last = now;
    ctx.log.emit({ kind: 'progress', label, bytes, ...(total ? { total } : {}), elapsedMs: now - started });
  };
}

// ---------------------------------------------------------------------------------------------
// Parts

const memberName = (p: BackupPart) => (p.kind === 'database' ? `${p.name}.dump` : `${p.name}.tar`);

/**
 * The line the command inside a container writes on stderr once tar has ended: tar's own exit status, told apart from
 * compose's and docker's (an image pull that failed, a container killed, a cut link to a remote engine all exit 1 too).
 * The script is constant; the folder travels as an argument, never inside the script.
 */
export const TAR_STATUS = 'compose-tasks-tar-exit:';
export const TAR_STATUS_SCRIPT = `tar "$@"; s=$?; echo "${TAR_STATUS}$s" >&2; exit $s`;

interface PartCommand {
  argv: string[];
  /** Through compose (exec or a one-off container): tar reports its own status (TAR_STATUS). */
  via?: 'exec' | 'run';
  /** Turns the command's failure into what to tell the user (a remote path part: its image or folder on the server). */
  explain?: (err: unknown) => unknown;
  /** The one-off container's name: removed when the stream stalls (a killed compose client leaves it behind). */
  container?: string;
}

/** BACKUP_STALL_TIMEOUT: seconds a part's stream may go without a byte before it is stopped (default 600). */
export function stallMs(ctx: Pick<TaskContext, 'env'>): number {
  const set = Number(ctx.env.get('BACKUP_STALL_TIMEOUT'));
  return Number.isFinite(set) && set > 0 ? set * 1000 : 600_000;
}

/**
 * `tar -C <dir> -cf - .` run by the host, the service (exec -T) or a one-off container of the service (run --rm).
 * A path part on a remote engine lives on the server: a one-off container of an app service reads it there.
 */
async function partCommand(ctx: TaskContext, p: Exclude<BackupPart, { kind: 'database' }>): Promise<PartCommand> {
  const tarArgs = (dir: string) => ['-C', dir, '-cf', '-', '.'];
  if (p.kind === 'path') {
    const abs = path.resolve(ctx.root, p.path);
    const engine = await (await mods.engine()).describeEngine(ctx.probe, ctx.env.values, path.join(ctx.root, '.cache', 'compose-tasks'));
    if (engine.remote) return remotePathPartCommand(ctx, p, abs, engine.host ?? engine.endpoint);
    if (!fs.existsSync(abs))
      throw new TaskError(`backup part ${p.name}: ${abs} does not exist`, {
        exitCode: ExitCode.prerequisite,
        hint: 'fix backupParts in tasks.ts or create the folder',
      });
    return { argv: ['tar', ...tarArgs(abs)] };
  }
  const { compose, containerStates } = await mods.compose();
  const project = await ctx.compose();
  // In a dry run with the engine down the state is unknown (undefined): the one-off container's command is shown.
  const states = await readOrUnknown(
    ctx,
    `whether ${p.service} runs`,
    () => containerStates(ctx.probe, project, [p.service]),
    undefined,
  ).catch(() => []);
  const script = ['-c', TAR_STATUS_SCRIPT, 'sh', ...tarArgs(p.path)];
  if (states?.some((s) => s.status === 'running')) return { argv: compose.exec(project, p.service, ['sh', ...script]), via: 'exec' };
  if (states) ctx.log.info(`${p.service} is not running: reading ${p.path} through a one-off ${p.service} container`);
  const container = `${ctx.env.get('COMPOSE_PROJECT_NAME') ?? 'compose-tasks'}-backup-${p.name}-${process.pid}`;
  return { argv: compose.run(project, p.service, script, { noDeps: true, entrypoint: 'sh', name: container }), via: 'run', container };
}

/**
 * Judges a folder part's tar from compose's exit code and the status tar reported itself: only tar's own 1 (files
 * changed while they were read) is a warning. No status line means tar never ran or did not finish (an image that
 * could not be pulled, a container killed, a cut connection); a status that differs from compose's exit code means
 * the stream was cut after tar ended. Returns the warning to log, if any.
 */
export function judgeTarExit(part: string, cmd: PartCommand, code: number, stderr: string): { warning?: string; error?: TaskError } {
  const lines = stderr.split('\n').map((l) => l.trim());
  const statusLines = lines.filter((l) => l.startsWith(TAR_STATUS));
  const others = lines.filter((l) => l && !l.startsWith(TAR_STATUS));
  const last = others.slice(-1)[0] ?? '';
  if (!cmd.via) {
    if (code === 0) return {};
    if (code === 1) return { warning: `backup part ${part}: tar exit 1, files changed while they were read (kept as a warning): ${last}` };
    return { error: new TaskError(`backup part ${part}: tar exited with code ${code}${last ? `: ${last}` : ''}`) };
  }
  const how = cmd.via === 'exec' ? 'compose exec' : 'compose run (a one-off container)';
  const hint =
    'check the Docker engine and the service image (docker compose ps, docker compose pull); nothing was written under a final name';
  const reported = statusLines.length ? Number(statusLines.slice(-1)[0]!.slice(TAR_STATUS.length)) : undefined;
  if (reported === undefined)
    return {
      error: new TaskError(
        `backup part ${part}: ${how} exited with code ${code} before tar reported its status ` +
          `(tar did not run or was cut off)${last ? `: ${last}` : ''}`,
        { hint },
      ),
    };
  if (reported !== code)
    return {
      error: new TaskError(
        `backup part ${part}: tar exited ${reported} but ${how} exited with code ${code}: ` +
          `the stream from the container was cut${last ? `: ${last}` : ''}`,
        { hint },
      ),
    };
  if (code === 0) return {};
  if (code === 1) return { warning: `backup part ${part}: tar exit 1, files changed while they were read (kept as a warning): ${last}` };
  return { error: new TaskError(`backup part ${part}: tar exited with code ${code} in the container${last ? `: ${last}` : ''}`) };
}

/** A tar stream ends with two 512-byte zero blocks: without them it was cut, even exactly between two members. */
function endsWithTarEof(file: string): boolean {
  const size = fs.statSync(file).size;
  if (size < 1024) return false;
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(1024);
    fs.readSync(fd, b, 0, 1024, size - 1024);
    return b.every((x) => x === 0);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A folder part's tar, listed whole before the archive is published (restore's own listing, listFolderPart): a stream
 * cut anywhere (mid-member, or between members: no end-of-archive blocks) fails the backup.
 */
async function checkFolderTar(ctx: TaskContext, name: string, mp: ManifestPart, file: string): Promise<void> {
  const { listFolderPart } = await import('./folders.ts');
  const cut = (why: string, cause?: unknown) =>
    new TaskError(`backup part ${mp.name}: its tar stream is incomplete (${why})`, {
      hint:
        'the stream from tar was cut (a container killed, an engine restarted, a lost connection): ' +
        'run the backup again; nothing was written under a final name',
      cause,
    });
  try {
    await listFolderPart(ctx, name, mp, file);
  } catch (err) {
    if (err instanceof TaskError && err.exitCode === ExitCode.refused)
      throw new TaskError(
        `backup part ${mp.name}: restore would refuse it: ${err.message.replace(`${name}: ${mp.file} is refused: `, '')}`,
        {
          hint:
            'replace that entry in the folder (restore accepts files, folders and links that stay inside it); ' +
            'nothing was written under a final name',
        },
      );
    if (err instanceof CommandError)
      throw cut(`tar -t: ${err.stderrTail.trim().split('\n').filter(Boolean)[0] ?? `exit ${err.exitCode}`}`, err);
    throw err;
  }
  if (!endsWithTarEof(file)) throw cut('it does not end with the end-of-archive blocks');
}

/** Exit code of the remote path part's reader when the folder is missing on the server (tar itself uses 1 and 2). */
export const MISSING_FOLDER_CODE = 66;

/** The argv that tars a path part on a remote engine's host (see hostPathRun); checks the folder exists first. */
export async function remotePathPartCommand(
  ctx: TaskContext,
  p: Extract<BackupPart, { kind: 'path' }>,
  abs: string,
  host: string,
): Promise<{ argv: string[]; explain: (err: unknown) => unknown }> {
  const engine = await mods.engine();
  const image = await engine.pathPartImage(ctx, p);
  ctx.log.info(`${p.name}: ${abs} is read on the engine's host (${host}) through a one-off container of ${image}`);
  const dir = engine.inPartMount(abs);
  const script = `[ -d "$1" ] || { echo "compose-tasks: no folder $1" >&2; exit ${MISSING_FOLDER_CODE}; }; exec tar -C "$1" -cf - .`;
  return {
    argv: engine.hostPathRun(image, abs, 'sh', ['-c', script, 'sh', dir], { readOnly: true }),
    explain: (err) => engine.explainHostPathError(err, image, abs),
  };
}

/**
 * pg_dump (custom format, already compressed) into the staging folder through a descriptor. An empty file or one
 * without the PGDMP header fails here; the full read that catches truncation is `verifyDump`, run by the caller.
 */
async function dumpToStaging(ctx: TaskContext, file: string, database?: string): Promise<void> {
  const pg = await mods.pg();
  const t0 = pg.pgTarget(ctx);
  const t = database ? { ...t0, database } : t0;
  const project = t.mode === 'compose' ? await ctx.compose() : undefined;
  // --compress=1: pg_dump's compression is the only one the dump gets, and level 1 costs about 25 % less CPU than the
  // default for a few % more bytes (pgbench -s 50: 12.5 s → 9.6 s, 13.4 → 13.7 MB); pg_restore reads any level.
  const cmd = pg.clientCmd(project, t, 'pg_dump', [...pg.pgDumpArgs({ database: t.database, format: 'custom' }), '--compress=1'], {
    stdout: { file, mode: 0o600 },
    stderr: 'capture',
  });
  try {
    await ctx.runner.run({ ...cmd, stallMs: stallMs(ctx) });
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw pg.explainPgError(err, t);
  }
  if (ctx.global.dryRun) return;
  if (fs.statSync(file).size === 0)
    throw new TaskError(`pg_dump exited 0 but wrote nothing for ${t.database}`, { hint: 'nothing was written under a final name' });
  if (pg.sniffDumpFormat(file) !== 'custom')
    throw new TaskError('pg_dump exited 0 but its output is not a custom-format archive (no PGDMP header)', {
      hint: 'nothing was written under a final name',
    });
}

const fragmentOf = (file: string) => `${file}.gz-member`;

type FolderPart = Exclude<BackupPart, { kind: 'database' }>;

/** A folder part's failure as the user sees it: named after the part (a missing remote folder: exit 3). */
function explainPartError(ctx: TaskContext, p: FolderPart, pc: PartCommand, e: unknown): unknown {
  if (e instanceof CommandError && e.exitCode === MISSING_FOLDER_CODE && e.stderrTail.includes('compose-tasks: no folder'))
    return new TaskError(`backup part ${p.name}: ${path.resolve(ctx.root, p.path)} does not exist on the remote engine's host`, {
      exitCode: ExitCode.prerequisite,
      hint: 'create it there or fix backupParts in tasks.ts (host paths resolve on the server: docker/compose#8484)',
    });
  const err = pc.explain ? pc.explain(e) : e;
  const passes = [ExitCode.sigint, ExitCode.sigterm, ExitCode.prerequisite] as number[];
  if (!(err instanceof TaskError) || passes.includes(err.exitCode)) return err;
  if (err.message.startsWith(`backup part ${p.name}:`)) return err;
  const detail = /No space left on device/i.test(err.message) ? 'no space left on the device' : err.message;
  return new TaskError(`backup part ${p.name}: ${detail}`, { exitCode: ExitCode.failure, hint: err.hint, cause: err });
}

/**
 * A folder's tar output written to `file` and, as it grows, compressed into the archive member it will become
 * (writeFragment); judged (tar's status, a full listing) before the digest of the member is returned.
 */
async function produceFolderPart(
  ctx: TaskContext,
  p: FolderPart,
  file: string,
  readFrom?: string,
): Promise<{ size: number; sha256: string } | undefined> {
  const pc = await partCommand(ctx, readFrom ? { ...p, path: readFrom } : p);
  const cmd = { argv: pc.argv, stdout: { file, mode: 0o600 }, stderr: 'capture', okCodes: [0, 1], stallMs: stallMs(ctx) } as const;
  const run = ctx.runner.run({ ...cmd, container: pc.container }).then(
    (r) => r,
    (e: unknown) => {
      // Through compose, any exit code is judged with the status tar reported (below).
      if (pc.via && e instanceof CommandError && !ctx.signal.aborted)
        return { code: e.exitCode, stdout: '', stderr: e.stderrTail, dryRun: false };
      throw e;
    },
  );
  const fragment = ctx.global.dryRun
    ? undefined
    : (async () => {
        const { writeFragment } = await mods.archive();
        return writeFragment(fragmentOf(file), memberName(p), followFile(file, run, ctx.signal), {
          signal: ctx.signal,
          onBytes: progress(ctx, p.name),
        });
      })();
  const [ran, frag] = await Promise.allSettled([run, fragment]);
  try {
    if (ran.status === 'rejected') throw ran.reason;
    if (frag.status === 'rejected') throw interrupted(ctx, frag.reason);
    if (!ctx.global.dryRun) {
      const judged = judgeTarExit(p.name, pc, ran.value.code, ran.value.stderr);
      if (judged.error) throw judged.error;
      if (judged.warning) ctx.log.warn(judged.warning);
      await checkFolderTar(ctx, p.name, { name: p.name, kind: p.kind, file: memberName(p), format: 'tar', size: 0, sha256: '' }, file);
    }
  } catch (e) {
    fs.rmSync(file, { force: true });
    fs.rmSync(fragmentOf(file), { force: true });
    throw explainPartError(ctx, p, pc, e);
  }
  // The member holds the bytes now; the plain copy is not needed any more.
  if (frag.value) fs.rmSync(file, { force: true });
  return frag.value;
}

/** The manifest's entry for a part (size and sha256 of its member). */
function manifestPartOf(p: BackupPart, size: number, sha256: string): ManifestPart {
  const mp: ManifestPart = {
    name: p.name,
    kind: p.kind,
    file: memberName(p),
    format: p.kind === 'database' ? 'pg_dump-custom' : 'tar',
    size,
    sha256,
  };
  if (p.kind === 'volume') {
    mp.service = p.service;
    mp.path = p.path;
    if (p.owner) mp.owner = p.owner;
  }
  if (p.kind === 'path') mp.path = p.path;
  return mp;
}

/**
 * One part into the staging folder. The dump is a file pg_dump writes itself (it seeks back to its table of
 * contents). A folder's tar output is written to a file and, as it grows, compressed into the archive member it
 * will become (writeFragment): the archive is then mostly a copy once the dump is done.
 */
async function producePart(
  ctx: TaskContext,
  p: BackupPart,
  staging: string,
  from: BackupSource,
  hooks: { onDump?: (file: string, done: Promise<void>) => void } = {},
): Promise<ManifestPart> {
  const file = path.join(staging, memberName(p));
  const started = Date.now();
  let digest: { size: number; sha256: string } | undefined;
  if (p.kind === 'database') {
    const done = dumpToStaging(ctx, file, from.database);
    hooks.onDump?.(file, done);
    await done;
  } else digest = await produceFolderPart(ctx, p, file, from.paths?.[p.name]);
  if (ctx.global.dryRun) return manifestPartOf(p, 0, '');
  const { size, sha256 } = digest ?? (await (await mods.archive()).hashFile(file, ctx.signal));
  if (p.kind !== 'database' && size < 1024) throw new TaskError(`backup part ${p.name}: tar wrote ${size} bytes, not a tar archive`);
  ctx.log.step(`${p.name}: ${formatBytes(size)} in ${formatDuration(Date.now() - started)}`);
  return manifestPartOf(p, size, sha256);
}

/** Service → image id of the running containers (empty without Docker). */
async function imageIds(ctx: TaskContext): Promise<Record<string, string>> {
  try {
    const { compose } = await mods.compose();
    const project = await ctx.compose();
    const ids = (await ctx.probe.run({ argv: compose.psIds(project), stdout: 'capture', stderr: 'capture' })).stdout
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
    if (!ids.length) return {};
    const r = await ctx.probe.run({
      argv: ['docker', 'inspect', '--format', '{{index .Config.Labels "com.docker.compose.service"}}\t{{.Image}}', ...ids],
      stdout: 'capture',
      stderr: 'capture',
    });
    const out: Record<string, string> = {};
    for (const line of r.stdout.split('\n')) {
      const [svc, id] = line.split('\t');
      if (svc && id) out[svc] = id;
    }
    return out;
  } catch {
    return {};
  }
}

async function gitCommit(ctx: TaskContext): Promise<string | undefined> {
  try {
    const r = await ctx.probe.run({ argv: ['git', '-C', ctx.root, 'rev-parse', 'HEAD'], stdout: 'capture', stderr: 'capture' });
    return r.stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

function toolInfo(root: string): { name: string; version: string } {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { name?: string; version?: string };
    return { name: pkg.name ?? 'compose-tasks', version: pkg.version ?? '0.0.0' };
  } catch {
    return { name: 'compose-tasks', version: 'unknown' };
  }
}

// ---------------------------------------------------------------------------------------------
// backup

export interface BackupResult {
  name: string;
  file: string;
  size: number;
  uploaded: boolean;
}

/**
 * `from`: read the parts elsewhere than where they live, under their own names (restore's safety archive reads the
 * previous copies it renamed aside): the database to dump, and a folder part's path (in its service, or on the host).
 */
type BackupOptions = { only?: string; reason?: Manifest['reason']; prune?: boolean; lock?: boolean; from?: BackupSource };
export interface BackupSource {
  database?: string;
  paths?: Record<string, string>;
}

/** What the steps of a backup pass on. Only `name` and the temp files go into the journal (plain data). */
interface BackupState {
  name: string;
  dir: string;
  final: string;
  /** The staging folder the parts are written to, and the archive's temp name: removed by undo, listed in the journal. */
  staging: string;
  tmp: string;
  parts: BackupPart[];
  t: PgTarget;
  from: BackupSource;
  s3s?: S3Settings;
  reason: Manifest['reason'];
  prune: boolean;
  versions?: { serverVersion?: string; pgDumpVersion?: string };
  /** The dump's full read (pg_restore -f /dev/null) that followed pg_dump: settles to its error, if any. */
  dumpRead?: Promise<unknown>;
  /** The final table of contents' read (pg_restore --list), started once the archive is being written. */
  tocRead?: Promise<unknown>;
  manifestParts?: ManifestPart[];
  size?: number;
  md5?: Promise<string | undefined>;
  published?: boolean;
  uploaded?: boolean;
  remoteListing?: Promise<RemoteObject[] | Error>;
  warnings?: string[];
  /** One fact per part made by the 'dump parts' step (its parallel steps each return theirs). */
  [part: `part:${string}`]: ManifestPart | undefined;
}

/** The journal's facts: recovery removes `temps` (paths relative to the backup folder) while the archive is unpublished. */
export const backupFacts = (s: Pick<BackupState, 'name' | 'dir' | 'staging' | 'tmp' | 'published'>) => ({
  name: s.name,
  temps: s.published ? [] : [path.relative(s.dir, s.staging), path.relative(s.dir, s.tmp)],
});

/** The names of a backup's steps, in order (the dry run prints them; COMPOSE_TASKS_STOP_AFTER_STEP takes one). */
export const BACKUP_STEPS = ['check', 'dump parts', 'write archive', 'verify', 'publish', 'upload', 'prune'] as const;

/**
 * Free space (about the size of the newest backup here) and the server and pg_dump versions: a mismatch is reported
 * before anything is written (it explains a pg_dump that failed). In a dry run what cannot be read is unknown.
 */
const checkStep: Step<BackupState> = {
  name: 'check',
  async run(ctx, s) {
    const newest = localBackups(s.dir).find((b) => b.project === ctx.env.get('COMPOSE_PROJECT_NAME'));
    if (!ctx.global.dryRun && newest) assertFree(s.dir, newest.size, `write backup ${s.name}`);
    if (!s.parts.some((p) => p.kind === 'database')) return { versions: {} };
    const pg = await mods.pg();
    const [server, client] = await Promise.all([
      readOrUnknown(ctx, 'PostgreSQL server version', () => pg.serverVersion(ctx, s.t, s.t.database), undefined),
      readOrUnknown(ctx, 'pg_dump version', () => pg.clientVersion(ctx, s.t, 'pg_dump'), undefined),
    ]);
    if (server) pg.assertDumpCompatible({ server, pgDump: client });
    return { versions: { serverVersion: server?.text, pgDumpVersion: client?.text } };
  },
};

/** One part into the staging folder; the dump's full read follows pg_dump's output as it is written. */
function partStep(p: BackupPart): Step<BackupState> {
  return {
    name: `${p.kind === 'database' ? 'dump' : 'tar'} ${p.name}`,
    async run(ctx, s) {
      let dumpRead: Promise<unknown> | undefined;
      const onDump = async (file: string, done: Promise<void>) => {
        if (ctx.global.dryRun) return;
        const pg = await mods.pg();
        dumpRead = pg.verifyDump(ctx, s.t, file, { growingUntil: done }).then(
          () => undefined,
          (e: unknown) => e,
        );
      };
      const mp = await producePart(ctx, p, s.staging, s.from, { onDump });
      return { [`part:${p.name}`]: mp, ...(dumpRead ? { dumpRead } : {}) };
    },
  };
}

/** The parts side by side (pg_dump and tar on different cores) in the staging folder; undo removes the folder. */
function dumpStep(parts: BackupPart[]): Step<BackupState> {
  const all = parallel('dump parts', parts.map(partStep));
  return {
    ...all,
    async run(ctx, s) {
      if (!ctx.global.dryRun) fs.mkdirSync(s.staging, { mode: 0o700 });
      ctx.log.step(`backup ${s.name}: ${s.parts.map((p) => p.name).join(', ')}${ctx.global.dryRun ? ' (dry run)' : ''}`);
      const made = (await all.run(ctx, s)) as Partial<BackupState>;
      return { ...made, manifestParts: s.parts.map((p) => made[`part:${p.name}`]!) };
    },
    async undo(_ctx, s) {
      fs.rmSync(s.staging, { recursive: true, force: true });
    },
  };
}

async function buildManifest(ctx: TaskContext, s: BackupState): Promise<Manifest> {
  const needsDocker = s.t.mode === 'compose' || s.parts.some((p) => p.kind === 'volume');
  const [images, commit] = await Promise.all([needsDocker ? imageIds(ctx) : Promise.resolve({}), gitCommit(ctx)]);
  const { serverVersion, pgDumpVersion } = s.versions ?? {};
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    name: s.name,
    createdAt: parseBackupName(s.name)!.time.toISOString(),
    appEnv: ctx.env.appEnv,
    project: ctx.env.require('COMPOSE_PROJECT_NAME'),
    database: s.t.database,
    ...(serverVersion ? { serverVersion } : {}),
    ...(pgDumpVersion ? { pgDumpVersion } : {}),
    images,
    ...(commit ? { gitCommit: commit } : {}),
    tool: toolInfo(ctx.root),
    reason: s.reason,
    parts: s.manifestParts!,
  };
}

/**
 * The archive under its temp name: the manifest, the dump (stored: pg_dump compressed it) and the folders' members
 * (compressed while tar wrote them: copied in as they are). Undo removes the temp archive.
 */
const writeStep: Step<BackupState> = {
  name: 'write archive',
  async run(ctx, s) {
    const manifest = await buildManifest(ctx, s);
    const mps = s.manifestParts!;
    if (ctx.global.dryRun) return;
    const { writeArchive } = await mods.archive();
    const total = mps.reduce(
      (n, p) => n + (p.kind === 'database' ? p.size : fs.statSync(fragmentOf(path.join(s.staging, p.file))).size),
      0,
    );
    // The full read followed the dump as it was written; pg_dump then rewrote the table of contents at the file's
    // start (with the data offsets), so that final one is read too (pg_restore --list), while the archive is written.
    const dumpPart = mps.find((p) => p.kind === 'database');
    const pg = await mods.pg();
    const tocRead = dumpPart
      ? pg.dumpHeader(ctx, s.t, path.join(s.staging, dumpPart.file)).then(
          () => undefined,
          (e: unknown) => e,
        )
      : Promise.resolve(undefined);
    ctx.log.step(`writing ${path.basename(s.final)}`);
    const members = mps.map((p) =>
      p.kind === 'database'
        ? { name: p.file, file: path.join(s.staging, p.file), level: 0 as const }
        : { name: p.file, fragment: fragmentOf(path.join(s.staging, p.file)) },
    );
    await writeArchive(
      s.tmp,
      [{ name: 'manifest.json', data: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), level: 1 }, ...members],
      {
        signal: ctx.signal,
        onBytes: progress(ctx, 'archive', total),
      },
    );
    return { tocRead };
  },
  async undo(_ctx, s) {
    fs.rmSync(s.tmp, { force: true });
  },
};

/** Every part's size and sha256 read back from the temp archive, and the dump's reads judged. */
const verifyStep: Step<BackupState> = {
  name: 'verify',
  async run(ctx, s) {
    if (ctx.global.dryRun) return;
    const { checkArchive, md5InWorker } = await mods.archive();
    ctx.log.step("checking the archive: every part's size and sha256");
    const size = fs.statSync(s.tmp).size;
    // The archive's MD5, for the upload to compare with the object's ETag, is computed beside the check on another thread.
    const md5 = s.s3s ? md5InWorker(s.tmp, ctx.signal).catch(() => undefined) : undefined;
    await checkArchive(s.tmp, { signal: ctx.signal, onBytes: progress(ctx, 'check', size) });
    const dumpError = (await s.dumpRead) ?? (await s.tocRead);
    if (dumpError) {
      const dumpFile = path.join(s.staging, s.manifestParts!.find((p) => p.kind === 'database')!.file);
      throw dumpError instanceof TaskError
        ? new TaskError(dumpError.message.replace(dumpFile, 'the dump'), {
            exitCode: dumpError.exitCode,
            hint: 'nothing was written under a final name, uploaded or pruned',
          })
        : dumpError;
    }
    return { size, md5 };
  },
};

/** The archive under its final name (fsync the archive, then the folder, then rename); the staging folder goes. */
const publishStep: Step<BackupState> = {
  name: 'publish',
  async run(ctx, s) {
    if (ctx.global.dryRun) return;
    fs.chmodSync(s.tmp, 0o600);
    publishDurably(s.tmp, s.final);
    fs.rmSync(s.staging, { recursive: true, force: true });
    recordVerified(s.dir, s.name, false, { size: s.size });
    ctx.log.success(`${s.final}: ${formatBytes(s.size!)}, checked`);
    return { published: true };
  },
};

/** Upload to S3 when it is configured, checked by the ETag (MD5) or the size; a failure keeps the local backup. */
const uploadStep: Step<BackupState> = {
  name: 'upload',
  async run(ctx, s) {
    if (ctx.global.dryRun) return;
    if (!s.s3s) {
      ctx.log.info('S3_BUCKET is not set: the backup stays local');
      return;
    }
    const s3m = await mods.s3();
    const missing = credentialsProblem(ctx, s3m);
    if (missing)
      throw new TaskError(`the upload did not happen: ${missing}; the backup stays local (${s.final})`, {
        exitCode: ExitCode.uploadFailed,
        hint: `set them in ${ctx.env.fileToFix} (documented in .env.template), then: tasks upload ${s.name}`,
      });
    const key = s3m.objectKey(s.s3s, s.name);
    ctx.log.step(`uploading to ${s3m.s3Url(s.s3s, key)}`);
    // The listing remote pruning needs is read while the upload runs (the new object is added once the upload is checked).
    const remoteListing = s.prune
      ? s3m.listRemote(ctx.probe, s.s3s).then(
          (l) => l,
          (e: unknown) => e as Error,
        )
      : undefined;
    const upStarted = Date.now();
    let checkedBy = 'size';
    try {
      checkedBy = await s3m.uploadFile(ctx.runner, s.s3s, s.final, key, s.size!, { md5: s.md5 });
    } catch (err) {
      if (err instanceof TaskError && err.exitCode === ExitCode.uploadFailed)
        throw new TaskError(
          `the upload did not happen: ${err.message.replace(/; the backup stays local$/, '')}; the backup stays local (${s.final})`,
          { exitCode: ExitCode.uploadFailed, hint: `retry with: tasks upload ${s.name}` },
        );
      throw err;
    }
    const how = checkedBy === 'md5' ? 'ETag matches the MD5' : 'size checked';
    ctx.log.success(`uploaded ${formatBytes(s.size!)} in ${formatDuration(Date.now() - upStarted)}, ${how}`);
    return { uploaded: true, remoteListing };
  },
};

/** Retention, local and remote (the new backup counts as a good one); its warnings go into the notification. */
const pruneStep: Step<BackupState> = {
  name: 'prune',
  async run(ctx, s) {
    if (ctx.global.dryRun) return;
    const listing = await s.remoteListing;
    if (listing instanceof Error) throw listing;
    const key = s.s3s ? (await mods.s3()).objectKey(s.s3s, s.name) : '';
    const remote =
      listing && s.uploaded ? [...listing.filter((r) => r.name !== s.name), { key, name: s.name, size: s.size!, modified: '' }] : listing;
    const project = ctx.env.require('COMPOSE_PROJECT_NAME');
    return { warnings: pruneWarnings(await pruneAll(ctx, { s3s: s.s3s, apply: true, project, remote, fresh: s.name })) };
  },
};

/** The steps of a backup, in order (BACKUP_STEPS); prune only when asked (a safety backup before a restore does not). */
function backupPlan(s: BackupState): Step<BackupState>[] {
  const plan = [checkStep, dumpStep(s.parts), writeStep, verifyStep, publishStep, uploadStep, ...(s.prune ? [pruneStep] : [])];
  return plan;
}

/** The folder (0700) and the change lock, taken before the journal is written (it lives in the folder). */
async function prepare(ctx: TaskContext, s: BackupState, lock: boolean): Promise<void> {
  if (ctx.global.dryRun) return;
  fs.mkdirSync(s.dir, { recursive: true, mode: 0o700 });
  if (lock) await (await import('./leftovers.ts')).takeChangeLock(ctx, 'backup');
}

/**
 * This second's backup name, once no archive here has it: names have one-second resolution, and a second backup in
 * the same second (a restore's safety archive, then a backup) would replace the first. Waits for the next second.
 */
async function freeName(ctx: TaskContext, dir: string): Promise<string> {
  const project = ctx.env.require('COMPOSE_PROJECT_NAME');
  for (;;) {
    const now = new Date();
    const name = backupName(project, now);
    if (!fs.existsSync(archiveFile(dir, name))) return name;
    await new Promise((r) => setTimeout(r, 1000 - now.getMilliseconds() + 5));
  }
}

/** A backup's name and the files it writes under it. */
function named(dir: string, name: string): Pick<BackupState, 'name' | 'final' | 'staging' | 'tmp'> {
  const final = archiveFile(dir, name);
  return { name, final, staging: path.join(dir, `.tmp-${name}`), tmp: `${final}.tmp` };
}

function initialState(ctx: TaskContext, o: BackupOptions, s3s: S3Settings | undefined, t: PgTarget): BackupState {
  const parts = selectParts(ctx.config.backupParts, o.only, 'tasks.ts (backupParts)');
  if (!parts.length) throw usage('no backup parts are declared in tasks.ts (config.backupParts)');
  const dir = backupDir(ctx);
  const name = backupName(ctx.env.require('COMPOSE_PROJECT_NAME'), new Date());
  const from = o.from ?? {};
  return { ...named(dir, name), dir, parts, t, from, s3s, reason: o.reason ?? 'manual', prune: o.prune !== false };
}

/**
 * Runs the backup plan with its journal (journalHooks removes it once the plan committed or was undone; a failed undo
 * keeps it for tasks recover). `seen` gets the state each step starts with, for the failure report.
 */
async function runBackupPlan(ctx: TaskContext, s0: BackupState, o: BackupOptions, seen: { last: BackupState }): Promise<BackupState> {
  await prepare(ctx, s0, o.lock !== false);
  // Named once the lock is held: a change recovered while taking it may have written an archive in this second.
  const s = ctx.global.dryRun ? s0 : { ...s0, ...named(s0.dir, await freeName(ctx, s0.dir)) };
  seen.last = s;
  if (!ctx.global.dryRun)
    ctx.onCleanup(() => {
      fs.rmSync(s.staging, { recursive: true, force: true });
      fs.rmSync(s.tmp, { force: true });
    });
  const kept = journalHooks<BackupState>(openJournal(s.dir, 'backup'), backupFacts, 'publish');
  const hooks: PlanHooks<BackupState> = {
    ...kept,
    beforeStep(step, i, st) {
      seen.last = st;
      kept.beforeStep(step, i, st);
    },
  };
  return runPlan(ctx, backupPlan(s), s, hooks);
}

export async function runBackup(ctx: TaskContext, o: BackupOptions): Promise<BackupResult> {
  const started = Date.now();
  const project = ctx.env.require('COMPOSE_PROJECT_NAME');
  const notifyMod = await mods.notify();
  const ns = notifyMod.notifySettings((k) => ctx.env.get(k), ctx.global.dryRun);
  const s3m = await mods.s3();
  const s0 = initialState(ctx, o, await s3For(ctx), (await mods.pg()).pgTarget(ctx));
  // The state the last step started with: the failure report says whether the upload had happened.
  const seen = { last: s0 };
  const report = () => ({ task: 'backup', project, appEnv: ctx.env.appEnv, host: os.hostname(), name: seen.last.name }) as const;
  await notifyMod.pingStart(ctx.log, ns);
  try {
    const s = await runBackupPlan(ctx, s0, o, seen);
    if (ctx.global.dryRun) {
      const files = s.manifestParts!.map((p) => p.file).join(', ');
      const up = s.s3s ? `, upload it to ${s3m.s3Url(s.s3s, s3m.objectKey(s.s3s, s.name))}` : '';
      ctx.log.info(`[dry-run] would write ${s.final} (manifest.json + ${files}), check it${up} and prune`);
      return { name: s.name, file: s.final, size: 0, uploaded: false };
    }
    const ms = Date.now() - started;
    const size = s.size!;
    const uploaded = s.uploaded === true;
    ctx.log.success(`backup ${s.name} done: ${formatBytes(size)} in ${formatDuration(ms)}${uploaded ? ', uploaded' : ''}`);
    ctx.out.write(`${s.final}\n`);
    const warnings = s.warnings ?? [];
    await notifyMod.report(ctx.log, ns, {
      ...report(),
      status: 'success',
      size,
      durationMs: ms,
      uploaded,
      ...(warnings.length ? { warnings } : {}),
    });
    return { name: s.name, file: s.final, size, uploaded };
  } catch (err0) {
    throw await backupFailed(ctx, err0, async (e, exitCode) =>
      notifyMod.report(ctx.log, ns, {
        ...report(),
        status: 'failure',
        durationMs: Date.now() - started,
        uploaded: seen.last.uploaded === true,
        error: e,
        exitCode,
      }),
    );
  }
}

/** A failed backup: the interruption or error as the user sees it (ENOSPC explained), after the failure is reported. */
async function backupFailed(ctx: TaskContext, err0: unknown, notify: (error: string, exitCode: number) => Promise<void>): Promise<unknown> {
  const err = interrupted(ctx, err0);
  const e = err as Error;
  await notify(ctx.log.mask(e.message ?? String(err)), err instanceof TaskError ? err.exitCode : ExitCode.failure);
  if (err instanceof TaskError) return err;
  if ((err as NodeJS.ErrnoException).code === 'ENOSPC')
    return new TaskError(`no space left on the device: ${e.message}`, {
      hint: 'free some space; older backups were not touched',
      cause: err,
    });
  return err;
}

// ---------------------------------------------------------------------------------------------
// prune

function policy(ctx: TaskContext): Omit<import('./retention.ts').RetentionPolicy, 'now'> {
  const int = (k: string, d?: number) => {
    const v = ctx.env.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new TaskError(`${k} must be a whole number ≥ 0, not "${v}"`, {
        exitCode: ExitCode.invalidEnv,
        hint: `fix ${k} in ${ctx.env.fileToFix}`,
      });
    return n;
  };
  return {
    retentionDays: int('BACKUP_RETENTION_DAYS', 30)!,
    keepMin: int('BACKUP_KEEP_MIN', 3)!,
    daily: int('BACKUP_KEEP_DAILY'),
    weekly: int('BACKUP_KEEP_WEEKLY'),
    monthly: int('BACKUP_KEEP_MONTHLY'),
  };
}

export interface PruneOutcome {
  local: PrunePlan;
  remote?: PrunePlan;
}

/** Why a prune deleted nothing (clock or gap), for the notification: the plans' warnings. */
export const pruneWarnings = (p: PruneOutcome): string[] =>
  [p.local.warning && `local: ${p.local.warning}`, p.remote?.warning && `remote: ${p.remote.warning}`].filter((w): w is string =>
    Boolean(w),
  );

/**
 * Plans and (with apply) deletes, local and remote separately, only this project's backups. Only verified backups
 * count as good, and nothing is deleted when the clock cannot be trusted (scripts/backup/trust.ts). `fresh`: the backup
 * this run just made.
 */
export async function pruneAll(
  ctx: TaskContext,
  o: { s3s: S3Settings | undefined; apply: boolean; project: string; now?: Date; remote?: RemoteObject[]; fresh?: string },
): Promise<PruneOutcome> {
  const { planPrune } = await mods.retention();
  const trust = await import('./trust.ts');
  const hold = o.s3s ? await trust.skewWarning(ctx.log, o.s3s) : undefined;
  const pol = {
    ...policy(ctx),
    now: o.now ?? new Date(),
    maxGapMs: trust.maxGapMs((k) => ctx.env.get(k)),
    ...(o.fresh ? { fresh: o.fresh } : {}),
    ...(hold ? { hold } : {}),
  };
  const dir = backupDir(ctx);
  const locals = localBackups(dir).filter((b) => b.project === o.project);
  const good = await trust.judgeLocal(ctx, dir, locals);
  const localPlan = planPrune(
    locals.map((b) => ({ name: b.name, time: b.time, good: good.get(b.name) ?? false })),
    pol,
  );
  if (localPlan.warning) ctx.log.warn(`local: ${localPlan.warning}`);
  for (const d of localPlan.delete) {
    const file = archiveFile(dir, d.name);
    if (o.apply && !ctx.global.dryRun) {
      fs.rmSync(file, { force: true });
      ctx.log.info(`deleted local ${file} (${d.reason})`);
    } else ctx.log.info(`would delete local ${file} (${d.reason})`);
  }
  let remotePlan: PrunePlan | undefined;
  if (o.s3s) {
    const s3m = await mods.s3();
    const remote = (o.remote ?? (await s3m.listRemote(ctx.probe, o.s3s)))
      .map((r) => ({ r, p: parseBackupName(r.name) }))
      .filter((x) => x.p && x.p.project === o.project);
    const remoteGood = trust.judgeRemote(
      ctx.log,
      dir,
      remote.map((x) => x.r),
    );
    remotePlan = planPrune(
      remote.map((x) => ({ name: x.r.name, time: x.p!.time, good: remoteGood.get(x.r.name) ?? false })),
      pol,
    );
    if (remotePlan.warning) ctx.log.warn(`remote: ${remotePlan.warning}`);
    for (const d of remotePlan.delete) {
      const url = s3m.s3Url(o.s3s, s3m.objectKey(o.s3s, d.name));
      if (o.apply && !ctx.global.dryRun) {
        await s3m.removeRemote(ctx.runner, o.s3s, s3m.objectKey(o.s3s, d.name));
        ctx.log.info(`deleted remote ${url} (${d.reason})`);
      } else ctx.log.info(`would delete remote ${url} (${d.reason})`);
    }
  }
  const n = localPlan.delete.length + (remotePlan?.delete.length ?? 0);
  if (!n) ctx.log.info(`prune: nothing to delete (retention ${pol.retentionDays} days, keep at least ${Math.max(1, pol.keepMin)})`);
  return { local: localPlan, ...(remotePlan ? { remote: remotePlan } : {}) };
}

// ---------------------------------------------------------------------------------------------
// verify, upload, download

/** A backup's archive here, downloaded from S3 and checked against its manifest when it is only there. */
async function fetchBackup(ctx: TaskContext, nameArg: string): Promise<{ file: string; downloaded: boolean }> {
  const name = await resolveName(ctx, nameArg, 'both');
  const file = archiveFile(backupDir(ctx), name);
  if (fs.existsSync(file)) return { file, downloaded: false };
  if (!(await s3For(ctx)))
    throw new TaskError(`backup ${name} is not in ${backupDir(ctx)}`, {
      exitCode: ExitCode.usage,
      hint: 'list them with: tasks backups (S3_BUCKET is not set, so only local backups exist)',
    });
  return { file: await downloadBackup(ctx, name), downloaded: true };
}

export async function downloadBackup(ctx: TaskContext, name: string): Promise<string> {
  const s = await requireS3(ctx);
  const missing = async () =>
    new TaskError(`no backup named ${name} in s3://${s.bucket}/${s.prefix}`, {
      exitCode: ExitCode.usage,
      hint: 'list them with: tasks backups',
    });
  const dl = await downloadArchive(ctx, s, name, { check: true, missing });
  if (ctx.global.dryRun) return archiveFile(backupDir(ctx), name);
  ctx.log.success(`${dl.file}: ${formatBytes(fs.statSync(dl.file).size)}, checksums match the manifest`);
  return dl.file;
}

/** The dump restored into a throwaway database, its tables counted, the database dropped (on an interruption too). */
async function restoreTest(ctx: TaskContext, t: PgTarget, name: string, dump: string): Promise<void> {
  const pg = await mods.pg();
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const db = `${t.database}_verify_${stamp}`.slice(0, 63);
  const server = await pg.serverVersion(ctx, t, t.database);
  let created = false;
  const drop = async () => {
    if (created) {
      created = false;
      await pg.dropDatabase(ctx, t, db, { force: true, serverMajor: server.major });
    }
  };
  ctx.onCleanup(drop);
  ctx.log.step(`restore test: into the throwaway database ${db}`);
  await pg.createDatabase(ctx, t, db, t.user);
  created = true;
  await pg.restoreDump(ctx, t, { file: dump, database: db });
  const tables = Number(
    await pg.psqlQuery(
      ctx,
      t,
      'SELECT count(*) FROM information_schema.tables ' +
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'",
      { database: db },
    ),
  );
  await drop();
  if (!tables)
    throw new TaskError(`restore test of ${name}: the restored database has no tables`, {
      hint: 'the dump is empty: check the backup source',
    });
  ctx.log.success(`restore test passed: ${tables} tables restored, ${db} dropped`);
}

export async function verifyBackup(ctx: TaskContext, nameArg: string, o: { restoreTest?: boolean }): Promise<void> {
  const { file, downloaded } = await fetchBackup(ctx, nameArg);
  const name = path.basename(file).replace(/\.tar\.gz$/, '');
  const dir = backupDir(ctx);
  if (ctx.global.dryRun) {
    ctx.log.info(`[dry-run] would check ${file}${o.restoreTest ? ' and restore its dump into a throwaway database' : ''}`);
    return;
  }
  const work = fs.mkdtempSync(path.join(dir, '.verify-'));
  ctx.onCleanup(() => fs.rmSync(work, { recursive: true, force: true }));
  const archive = await mods.archive();
  const pg = await mods.pg();
  ctx.log.step(`checking ${path.basename(file)}: members, sizes, sha256`);
  let checked: Awaited<ReturnType<typeof archive.extractArchive>>;
  try {
    checked = await archive.extractArchive(file, work, {
      only: (p) => p.kind === 'database',
      signal: ctx.signal,
      onBytes: progress(ctx, 'check', fs.statSync(file).size),
    });
  } catch (err) {
    throw interrupted(ctx, err);
  }
  const m = checked.manifest;
  if (m.legacy) ctx.log.warn('an old backup.sh archive: it has no checksums, only the dump can be checked');
  const dump = checked.files[m.parts.find((p) => p.kind === 'database')?.name ?? ''];
  const t = pg.pgTarget(ctx);
  if (dump) {
    ctx.log.step('reading the whole dump (pg_restore -f /dev/null)');
    await pg.verifyDump(ctx, t, dump);
  }
  if (o.restoreTest) {
    if (!dump) throw new TaskError(`${name} has no database part: nothing to restore-test`, { exitCode: ExitCode.usage });
    await restoreTest(ctx, t, name, dump);
  }
  recordVerified(dir, name, Boolean(o.restoreTest), { size: fs.statSync(file).size });
  ctx.log.success(`${name} verified${downloaded ? ' (downloaded from S3)' : ''}`);
}

export async function uploadBackup(ctx: TaskContext, nameArg: string): Promise<void> {
  const name = await resolveName(ctx, nameArg, 'local');
  const file = archiveFile(backupDir(ctx), name);
  if (!fs.existsSync(file))
    throw new TaskError(`${file} does not exist`, { exitCode: ExitCode.usage, hint: 'list them with: tasks backups' });
  const s = await requireS3(ctx);
  const s3m = await mods.s3();
  if (!ctx.global.dryRun) {
    ctx.log.step(`checking ${path.basename(file)} before upload`);
    try {
      await (await mods.archive()).checkArchive(file, { signal: ctx.signal });
    } catch (err) {
      throw interrupted(ctx, err);
    }
  }
  const key = s3m.objectKey(s, name);
  ctx.log.step(`uploading to ${s3m.s3Url(s, key)}`);
  const size = ctx.global.dryRun ? 0 : fs.statSync(file).size;
  const md5 = ctx.global.dryRun ? undefined : (await mods.archive()).md5InWorker(file, ctx.signal).catch(() => undefined);
  const checkedBy = await s3m.uploadFile(ctx.runner, s, file, key, size, { md5 });
  if (ctx.global.dryRun) ctx.log.info(`[dry-run] would upload ${name}`);
  else ctx.log.success(`uploaded ${name}${checkedBy === 'md5' ? ', ETag matches the MD5' : checkedBy === 'size' ? ', size checked' : ''}`);
}

// ---------------------------------------------------------------------------------------------
// catalogue

export interface CatalogueEntry {
  name: string;
  date: string;
  size: number;
  where: 'local' | 'remote' | 'both';
  lastVerified?: string;
  restoreTested?: boolean;
  local?: { file: string; size: number };
  remote?: { key: string; size: number };
}

export function catalogue(locals: LocalBackup[], remote: RemoteObject[], verified: Record<string, VerifiedRecord>): CatalogueEntry[] {
  const map = new Map<string, CatalogueEntry>();
  for (const l of locals)
    map.set(l.name, { name: l.name, date: l.time.toISOString(), size: l.size, where: 'local', local: { file: l.file, size: l.size } });
  for (const r of remote) {
    const p = parseBackupName(r.name);
    if (!p) continue;
    const e = map.get(r.name);
    if (e) {
      e.where = 'both';
      e.remote = { key: r.key, size: r.size };
    } else
      map.set(r.name, { name: r.name, date: p.time.toISOString(), size: r.size, where: 'remote', remote: { key: r.key, size: r.size } });
  }
  for (const e of map.values()) {
    const v = verified[e.name];
    if (v) {
      e.lastVerified = v.at;
      e.restoreTested = v.restoreTest;
    }
  }
  return [...map.values()].sort((a, b) => (a.date < b.date ? 1 : a.date > b.date ? -1 : a.name < b.name ? 1 : -1));
}

function formatCatalogue(entries: CatalogueEntry[]): string {
  if (!entries.length) return 'no backups\n';
  const rows = entries.map((e) => [
    e.name,
    e.date.replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
    formatBytes(e.size),
    e.where,
    e.lastVerified ? `${e.lastVerified.slice(0, 16).replace('T', ' ')}${e.restoreTested ? ' (restore test)' : ''}` : 'never',
  ]);
  const head = ['NAME', 'DATE (UTC)', 'SIZE', 'WHERE', 'LAST VERIFIED'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return (
    [head, ...rows]
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

// ---------------------------------------------------------------------------------------------
// Tasks

const backup = defineTask({
  name: 'backup',
  description: 'Back up the database, volumes and folders into one checked archive, upload it to S3/R2, prune old ones',
  group: 'backups',
  options: {
    only: { type: 'string', description: 'only these parts, comma separated (e.g. db,addons)', placeholder: 'parts' },
    reason: { type: 'string', description: 'why: manual, scheduled or pre-restore (recorded in the manifest)', default: 'manual' },
  },
  example: 'tasks backup --only db',
  async run(ctx) {
    const reason = ctx.opts.reason;
    if (!['manual', 'scheduled', 'pre-restore'].includes(reason))
      throw usage(`--reason must be manual, scheduled or pre-restore, not "${reason}"`);
    await runBackup(ctx, { only: ctx.opts.only, reason: reason as Manifest['reason'] });
  },
});

const backups = defineTask({
  name: 'backups',
  description: 'List local and remote backups, newest first: date, size, where, last verified',
  group: 'backups',
  options: { json: { type: 'boolean', description: 'print JSON' } },
  async run(ctx) {
    const dir = backupDir(ctx);
    const s = await s3For(ctx);
    let remote: RemoteObject[] = [];
    let remoteError: TaskError | undefined;
    if (s) {
      const s3m = await mods.s3();
      const missing = credentialsProblem(ctx, s3m);
      if (missing) remoteError = new TaskError(`remote backups not listed: ${missing}`, { exitCode: ExitCode.uploadFailed });
      else {
        try {
          remote = await s3m.listRemote(ctx.probe, s);
        } catch (err) {
          remoteError = err instanceof TaskError ? err : new TaskError(String(err), { exitCode: ExitCode.uploadFailed });
        }
      }
      if (remoteError) ctx.log.warn(remoteError.message);
    }
    const entries = catalogue(localBackups(dir), remote, readVerified(dir));
    ctx.out.write(ctx.opts.json ? `${JSON.stringify(entries, null, 2)}\n` : formatCatalogue(entries));
    return remoteError ? remoteError.exitCode : 0;
  },
});

const verify = defineTask({
  name: 'verify',
  description: 'Check a backup: every checksum and a full read of the dump; --restore-test restores it into a throwaway database',
  group: 'backups',
  args: { name: { description: 'backup name (or file), or "latest"', required: true } },
  options: { restoreTest: { type: 'boolean', description: 'also restore the dump into a throwaway database, check it, drop it' } },
  example: 'tasks verify latest --restore-test',
  async run(ctx) {
    await verifyBackup(ctx, ctx.args.name, { restoreTest: ctx.opts.restoreTest });
  },
});

const prune = defineTask({
  name: 'prune',
  description: 'Delete backups past retention, local and remote separately (never the newest good ones); --dry-run shows them',
  group: 'backups',
  async run(ctx) {
    const project = ctx.env.require('COMPOSE_PROJECT_NAME');
    const dir = backupDir(ctx);
    if (fs.existsSync(dir)) await (await import('./leftovers.ts')).takeChangeLock(ctx, 'prune');
    const s = await s3For(ctx);
    if (s) {
      const missing = credentialsProblem(ctx, await mods.s3());
      if (missing)
        throw new TaskError(`cannot prune remote backups: ${missing}`, {
          exitCode: ExitCode.invalidEnv,
          hint: `set them in ${ctx.env.fileToFix}`,
        });
    }
    const warnings = pruneWarnings(await pruneAll(ctx, { s3s: s, apply: true, project }));
    if (warnings.length) {
      const notifyMod = await mods.notify();
      await notifyMod.report(
        ctx.log,
        notifyMod.notifySettings((k) => ctx.env.get(k), ctx.global.dryRun),
        {
          status: 'success',
          task: 'prune',
          project,
          appEnv: ctx.env.appEnv,
          host: os.hostname(),
          durationMs: 0,
          warnings,
        },
      );
    }
  },
});

const upload = defineTask({
  name: 'upload',
  description: 'Upload a local backup to S3/R2 (checked first; what arrived checked after)',
  group: 'backups',
  args: { name: { description: 'backup name (or file), or "latest" (the newest here)', required: true } },
  async run(ctx) {
    await uploadBackup(ctx, ctx.args.name);
  },
});

const download = defineTask({
  name: 'download',
  description: 'Download a backup from S3/R2 into the backup folder, checked against its manifest',
  group: 'backups',
  args: { name: { description: 'backup name (or file), or "latest" (the newest in S3)', required: true } },
  async run(ctx) {
    const name = await resolveName(ctx, ctx.args.name, 's3');
    const final = archiveFile(backupDir(ctx), name);
    if (fs.existsSync(final)) {
      ctx.log.info(`${final} is already here`);
      return;
    }
    await downloadBackup(ctx, name);
  },
});

export const backupTasks: AnyTask[] = [backup, backups, verify, prune, upload, download];
