// restore <name>: a plan of named steps, journaled. Verify, confirm, then load the backup into a side database and stage
// its folders while the application keeps serving; only then stop the app, swap the database and the folders by rename,
// start it and check it (the commit point). The previous copies, renamed aside, are the safety copy: a failure swaps
// them back; after success the safety archive is written from them while the app already serves, then they go.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineTask, type AnyTask, type TaskContext } from '../core/define.ts';
import { ExitCode, TaskError, refused, usage } from '../core/errors.ts';
import { parseBackupName, selectParts, type ManifestPart } from './manifest.ts';
import { archiveFile, assertFree, backupDir, bareName, downloadArchive, localBackups, resolveName, s3Of } from './store.ts';
import { parallel, runPlan, type Step } from '../core/plan.ts';
import { readOrUnknown } from '../tools/probe.ts';
import { cannotRunReason } from '../tools/compose.ts';
import { journalHooks, openJournal } from '../core/journal.ts';
import { listFolderPart, planFolder, stageFolder, type FolderCmds, type FolderListing } from './folders.ts';
import type { ComposeProject } from '../tools/compose.ts';
import { assertSideCopyFits, loadStep, sideDatabaseName, swapStep, type SideDatabase, type SideEnv } from './sidedb.ts';

type Pg = typeof import('../tools/postgres.ts');
type PgTarget = import('../tools/postgres.ts').PgTarget;
type ArchiveManifest = import('./archive.ts').ArchiveManifest;

// ---------------------------------------------------------------------------------------------
// Pure helpers (unit-tested)

/** `2026-11-22T05:59:01Z` → `20261122055901`: the suffix of the temporary and previous database names. */
export function restoreStamp(d: Date): string {
  return d.toISOString().slice(0, 19).replace(/[-:T]/g, '');
}

export function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The names closest to `wanted`: nearest in time when both carry a date, else by edit distance. */
export function nearestNames(wanted: string, candidates: string[], n = 3): string[] {
  const w = parseBackupName(wanted);
  const unique = [...new Set(candidates)];
  const score = (c: string): number => {
    const p = parseBackupName(c);
    if (w && p) return Math.abs(p.time.getTime() - w.time.getTime()) / 1000 + (p.project === w.project ? 0 : 1e9);
    return levenshtein(wanted, c) * 1e6;
  };
  return unique.sort((a, b) => score(a) - score(b) || a.localeCompare(b)).slice(0, n);
}

/** Default parallelism of pg_restore: min(4, cores); --jobs overrides (a positive integer). */
export function restoreJobs(opt: string | undefined, cores: number): number {
  if (opt === undefined || opt === '') return Math.max(1, Math.min(4, cores));
  const n = Number(opt);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw usage(`--jobs ${opt}: expected a whole number from 1 to 64`);
  return n;
}

/** The command that undoes a restore: restore the safety backup taken just before. */
export function rollbackCommand(safetyBackup: string): string {
  return `tasks restore ${safetyBackup} --yes --no-safety-backup`;
}

// ---------------------------------------------------------------------------------------------
// Finding the archive (local, else S3)

interface Located {
  name: string;
  file: string;
  /** Downloaded for this restore: removed again if it turns out to be bad. */
  downloaded: boolean;
  /** Puts a checked download under its final name (store.ts). */
  publish?: () => string;
}

async function locate(ctx: TaskContext, input: string): Promise<Located> {
  const dir = backupDir(ctx);
  const settings = await s3Of(ctx);
  const direct = path.resolve(ctx.root, input);
  const name = bareName(input) === 'latest' ? await resolveName(ctx, input, 'both') : bareName(input);
  const localFile = archiveFile(dir, name);
  if (fs.existsSync(localFile)) return { name, file: localFile, downloaded: false };
  if (fs.existsSync(direct) && /\.(tar\.gz|tgz)$/.test(input)) return { name, file: direct, downloaded: false };
  const notFound = async () => {
    let remote: string[] = [];
    if (settings)
      try {
        remote = (await (await import('../tools/s3.ts')).listRemote(ctx.probe, settings)).map((o) => o.name);
      } catch {
        /* the names are only a hint */
      }
    const near = nearestNames(name, [...localBackups(dir).map((b) => b.name), ...remote]);
    return new TaskError(
      `no backup named ${name} (looked in ${path.relative(ctx.root, dir) || dir}` +
        `${settings ? ` and s3://${settings.bucket}/${settings.prefix}` : ''})`,
      { exitCode: ExitCode.usage, hint: near.length ? `nearest: ${near.join(', ')}` : 'there are no backups yet: tasks backup' },
    );
  };
  if (!settings) throw await notFound();
  // Downloaded to a temp name; restore verifies every checksum while it unpacks, then publishes it.
  const dl = await downloadArchive(ctx, settings, name, { check: false, missing: notFound });
  return { name, file: dl.file, downloaded: true, publish: dl.publish };
}

// ---------------------------------------------------------------------------------------------
// The plan

/** What the steps of a restore read and return (with the side database's facts: target, temp, old, …). */
export interface RestoreState extends SideDatabase {
  input: string;
  jobs: number;
  name: string;
  file: string;
  /** Downloaded for this restore and not yet checked: removed again if it turns out to be bad. */
  downloaded: boolean;
  publish?: () => string;
  manifest?: ArchiveManifest;
  selected: string[];
  /** Part → its unpacked file, and a folder part's checked member names and unpacked size. */
  files: Record<string, string>;
  listings: Record<string, FolderListing>;
  /** The parts the safety archive holds (the ones replaced here), written from the previous copies after the swap. */
  safetyParts: string[];
  project?: ComposeProject;
  /** The app services this restore stops (and starts again), read just before the swap. */
  stopped: string[];
  folders: FolderCmds[];
  safetyName?: string;
}

/** What every step shares: the server, the unpack folder, the stamp of the side names. Rebuilt by tasks recover. */
export interface RestoreEnv {
  /** The command's options (tasks recover has none). */
  o: { only?: string; noSafetyBackup?: boolean; as?: string; keepOld?: boolean; force?: boolean; noRollback?: boolean };
  pg: Pg;
  t: PgTarget;
  work: string;
  stamp: string;
}

/**
 * The step whose end is the commit point: the app answered its health check on the restored state. Before it, a
 * failed or killed restore is undone (the previous copies renamed back); after it, finished (safety archive, cleanup).
 */
export const RESTORE_COMMIT_POINT = 'check the database';

/** The journal's facts: plain data, enough for tasks recover to undo or finish (scripts/backup/recover.ts). */
export function restoreFacts(s: RestoreState, e: RestoreEnv): Record<string, unknown> {
  const { target, targetExists, keepOld, stopped, temp, old, folders, safetyName, safetyParts, name: backup } = s;
  return {
    backup,
    database: target,
    targetExists,
    keepOld,
    stopped,
    temp,
    old,
    folders,
    safetyParts,
    safetyName,
    work: e.work,
    stamp: e.stamp,
    download: s.downloaded ? s.file : undefined,
  };
}

const sideEnv = (e: RestoreEnv): SideEnv => ({ pg: e.pg, t: e.t, failedName: (target) => sideDatabaseName(target, 'failed', e.stamp) });

const dbPartOf = (s: RestoreState) => s.manifest?.parts.find((p) => p.kind === 'database' && s.selected.includes(p.name));
const folderPartsOf = (s: RestoreState) => s.manifest?.parts.filter((p) => p.kind !== 'database' && s.selected.includes(p.name)) ?? [];

/**
 * The steps of a restore, in order (a test asserts them). The application serves until 'stop the app'; it is down
 * only for the two swaps (renames) and its start. With --no-rollback a failed health check keeps the restored state.
 */
export function restorePlan(e: RestoreEnv): Step<RestoreState>[] {
  const health = e.o.noRollback ? 'health' : 'change';
  return [
    { name: 'find the backup', run: (ctx, s) => findBackup(ctx, s) },
    { name: 'verify', run: (ctx, s) => verifyBackup(ctx, e, s), undo: async (_c, s) => discardDownload(s) },
    { name: 'confirm', run: (ctx, s) => confirmRestore(ctx, e, s) },
    parallel('load the database and stage the folders', [
      loadStep('load the database', sideEnv(e), (ctx, s: RestoreState) => restoreSide(ctx, e, s)),
      { name: 'stage the folders', run: (ctx, s) => unpackFolders(ctx, s), undo: (ctx, s) => foldersBack(ctx, s) },
    ]),
    { name: 'check before the swap', run: (ctx, s) => checkBeforeSwap(ctx, e, s) },
    { name: 'stop the app', run: (ctx, s) => stopApp(ctx, s), undo: (ctx, s) => startApp(ctx, s) },
    swapStep('swap the database', sideEnv(e)),
    { name: 'swap the folders', run: (ctx, s) => swapFolders(ctx, s), undo: (ctx, s) => foldersBack(ctx, s), commit: removeOldFolders },
    // Its undo stops the app again, so the swaps back do not race its reconnecting sessions.
    {
      name: 'start the app',
      phase: health,
      run: (ctx, s) => unhealthy(e, s, () => startAndCheckApp(ctx, s)),
      undo: (ctx, s) => stopApp(ctx, s),
    },
    {
      name: RESTORE_COMMIT_POINT,
      phase: health,
      run: (ctx, s) => unhealthy(e, s, () => checkDatabase(ctx, e, s)),
      // Killed right after this check, before the journal said so: recover checks again, and finishes only if it holds.
      done: (ctx, s) => stillHealthy(ctx, e, s),
    },
    { name: 'safety archive', run: (ctx, s) => safetyArchive(ctx, e, s) },
  ];
}

const isInterrupt = (err: unknown) => err instanceof TaskError && (err.exitCode === ExitCode.sigint || err.exitCode === ExitCode.sigterm);

/**
 * A health failure, exit 7. By default the plan then swaps the previous copies back (afterFailure says so); with
 * --no-rollback the restored state stays and the hint gives the exact commands that swap the previous copies back.
 */
async function unhealthy(e: RestoreEnv, s: RestoreState, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (err) {
    if (isInterrupt(err)) throw err;
    const why = (err as Error).message.split('\n')[0];
    throw new TaskError(`restored ${s.name}, but the application is unhealthy: ${why}${e.o.noRollback ? '; kept (--no-rollback)' : ''}`, {
      exitCode: ExitCode.unhealthy,
      hint: e.o.noRollback ? swapBackByHand(e, s) : 'see the logs (tasks logs), fix the app, then restore again',
      cause: err,
    });
  }
}

/** The commands that put the previous copies back after an unhealthy restore kept by --no-rollback. */
function swapBackByHand(e: RestoreEnv, s: RestoreState): string {
  const { quoteIdent } = e.pg;
  const steps = [`stop ${s.stopped.join(', ') || 'the app'}`];
  if (s.temp && s.targetExists && s.old) {
    const failed = sideDatabaseName(s.target, 'failed', e.stamp);
    const sql =
      `ALTER DATABASE ${quoteIdent(s.target)} RENAME TO ${quoteIdent(failed)}; ` +
      `ALTER DATABASE ${quoteIdent(s.old)} RENAME TO ${quoteIdent(s.target)}`;
    steps.push(`tasks psql -- -d postgres -c '${sql}'`);
  }
  for (const f of s.folders) steps.push(f.back.manual ?? f.back.argv.join(' '));
  return `to swap the previous copies back: ${steps.join(' ; ')} ; then start the app (tasks dev)`;
}

async function findBackup(ctx: TaskContext, s: RestoreState): Promise<Partial<RestoreState>> {
  const loc = await locate(ctx, s.input);
  return { name: loc.name, file: loc.file, downloaded: loc.downloaded, publish: loc.publish };
}

function discardDownload(s: RestoreState): void {
  if (s.downloaded) fs.rmSync(s.file, { force: true });
}

/** Verify everything before touching anything: manifest, origin, members, checksums while unpacking, the dump. */
async function verifyBackup(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<Partial<RestoreState>> {
  const dry = ctx.runner.dryRun;
  if (dry && s.downloaded) {
    ctx.log.info(
      `[dry-run] would verify ${s.name} (manifest checksums, members, a full read of the dump, PostgreSQL version) once downloaded`,
    );
    return {};
  }
  ctx.log.step(`verifying ${s.name}`);
  const archive = await import('./archive.ts');
  const manifest = await archive.readManifest(s.file);
  const selected = selectParts(manifest.parts, e.o.only, 'this backup').map((p) => p.name);
  // From the manifest alone, so before anything is unpacked.
  checkOrigin(ctx, s.name, manifest, s.target, e.o);
  let out: Partial<RestoreState> = { manifest, selected };
  if (dry) {
    // extractArchive lists and checks every member before writing anything; a dry run only lists them.
    archive.checkMembers(s.file, await archive.listMembers(s.file), manifest);
  } else {
    out = { ...out, ...(await unpackChecked(ctx, e, { ...s, manifest, selected })) };
    if (manifest.legacy)
      ctx.log.warn(
        `${s.name} is an old backup.sh archive: it has no checksums to verify ` +
          '(sizes, members and a full read of the dump are still checked)',
      );
  }
  if (s.downloaded && !dry) {
    const final = s.publish!();
    out = { ...out, file: final, downloaded: false };
    ctx.log.info(`downloaded to ${path.relative(ctx.root, final)}`);
  }
  ctx.log.success(
    `${s.name} verified` +
      (manifest.legacy
        ? ' (old backup.sh archive: sizes, members and dump checked; no checksums)'
        : ': checksums, sizes, members and dump'),
  );
  return out;
}

/**
 * Unpacks the selected parts into the work folder, checking each checksum; the dump's checks (versions, a full read)
 * start as soon as it is out, and each folder's own tar is listed and checked as soon as it is, while the rest unpacks.
 */
async function unpackChecked(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<Partial<RestoreState>> {
  const archive = await import('./archive.ts');
  const manifest = s.manifest!;
  const need = manifest.parts.filter((p) => s.selected.includes(p.name)).reduce((n, p) => n + p.size, 0);
  const dir = path.dirname(e.work);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  assertFree(dir, need, `unpack ${s.name}`);
  const settle = <T>(p: Promise<T>): Promise<T | Error> => p.catch((err: unknown) => err as Error);
  let dumpCheck: Promise<number | Error> | undefined;
  const listings = new Map<string, Promise<FolderListing>>();
  const res = await archive
    .extractArchive(s.file, e.work, {
      only: (p) => s.selected.includes(p.name),
      signal: ctx.signal,
      onPart: (p, file) => {
        if (p.kind === 'database') {
          dumpCheck ??= settle(checkDump(ctx, e, s.name, file, manifest));
          return;
        }
        const listing = listFolderPart(ctx, s.name, p, file);
        listing.catch(() => undefined);
        listings.set(p.name, listing);
      },
    })
    .catch(async (err: unknown) => {
      await dumpCheck;
      throw err;
    });
  const listed: Record<string, FolderListing> = {};
  for (const [part, listing] of listings) listed[part] = await listing;
  const dbPart = dbPartOf(s);
  const checked = dbPart ? await (dumpCheck ?? settle(checkDump(ctx, e, s.name, res.files[dbPart.name]!, manifest))) : undefined;
  if (checked instanceof Error) throw checked;
  return { files: res.files, listings: listed, serverMajor: checked };
}

/** The dump against the server (versions) and a full read of it; returns the server's major version. */
async function checkDump(ctx: TaskContext, e: RestoreEnv, name: string, dump: string, m: ArchiveManifest): Promise<number> {
  const { pg, t } = e;
  const part = m.parts.find((p) => p.kind === 'database')!;
  const [server, header] = await Promise.all([pg.serverVersion(ctx, t), pg.dumpHeader(ctx, t, dump)]);
  const fromManifest = m.serverVersion ? pg.parseVersion(m.serverVersion) : undefined;
  const dumpedFrom = header.dumpedFrom ? pg.parseVersion(header.dumpedFrom) : fromManifest;
  for (const v of [fromManifest, dumpedFrom]) {
    if (v) pg.assertDumpCompatible({ server, dumpedFrom: v, file: `${name} (${part.file})` });
  }
  const { formatBytes } = await import('../core/log.ts');
  ctx.log.step(`reading the whole dump (${formatBytes(part.size)})`);
  await pg.verifyDump(ctx, t, dump);
  return server.major;
}

/** Reads what the change will touch (read-only), plans the side names and folder commands, and asks. */
async function confirmRestore(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<Partial<RestoreState>> {
  const { pg, t } = e;
  const dry = ctx.runner.dryRun;
  const dbPart = dbPartOf(s);
  const target = s.target;
  const targetExists = dbPart
    ? await readOrUnknown(ctx, `whether database ${target} exists`, () => pg.databaseExists(ctx, t, target), true)
    : false;
  // Sessions of the app's own role are ended at the swap; another role's would only fail it (checked again before it).
  if (targetExists && !dry) await refuseOtherSessions(ctx, pg, t, target);
  // --as into another existing database keeps that one (no safety archive covers it); --as the app's own is a plain restore.
  const intoOther = Boolean(e.o.as && e.o.as !== t.database);
  const keepOld = Boolean(e.o.keepOld || (intoOther && targetExists));
  const others = folderPartsOf(s);
  const project = await projectFor(ctx, e, others);
  const temp = dbPart ? sideDatabaseName(target, 'restore', e.stamp) : undefined;
  // A previous copy kept by an earlier restore in the same second (--keep-old) keeps its name: this one gets _2, _3, …
  let old = dbPart && targetExists ? sideDatabaseName(target, 'old', e.stamp) : undefined;
  for (let n = 2; old && !dry && (await pg.databaseExists(ctx, t, old)); n++) old = sideDatabaseName(target, 'old', `${e.stamp}_${n}`);
  const folders = await planFolders(ctx, e, s, project);
  // The safety archive holds what is replaced, only that: the database when it exists, the folders restored.
  const replaced = [...(dbPart && targetExists ? [dbPart.name] : []), ...others.map((p) => p.name)];
  const safetyParts = e.o.noSafetyBackup || intoOther ? [] : replaced.filter((n) => ctx.config.backupParts.some((p) => p.name === n));
  const next = { ...s, targetExists, keepOld, project, temp, old, folders, safetyParts };
  await assertRoom(ctx, e, next);
  await askRestore(ctx, e, next);
  return { targetExists, keepOld, project, temp, old, folders, safetyParts };
}

/**
 * The compose project, when the restore needs it: the app to stop, a volume part, a database in the stack. In URL mode
 * with no volume part an engine that cannot be reached (no stack here, a managed database) means no app to stop.
 */
async function projectFor(ctx: TaskContext, e: RestoreEnv, others: ManifestPart[]): Promise<ComposeProject | undefined> {
  const must = others.some((p) => p.kind === 'volume') || e.t.mode === 'compose';
  if (!must && !ctx.config.appServices.length) return undefined;
  if (must) return ctx.compose();
  try {
    const project = await ctx.compose();
    if (!ctx.runner.dryRun) await (await import('../tools/compose.ts')).containerStates(ctx.probe, project, ctx.config.appServices);
    return project;
  } catch (err) {
    const why = cannotRunReason(err);
    if (why === undefined) throw err;
    ctx.log.info(`no app service to stop: the stack cannot be reached (${why})`);
    return undefined;
  }
}

/** Room for the side copies, before anything is loaded: the database server's disk, and each local folder's. */
async function assertRoom(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<void> {
  if (ctx.runner.dryRun) return;
  await assertSideCopyFits(ctx, sideEnv(e), s, dbPartOf(s)?.size ?? 0);
  for (const f of s.folders) {
    const bytes = s.listings[f.part]?.bytes;
    if (f.localParent && bytes !== undefined)
      assertFree(f.localParent, bytes, `stage ${f.part} beside ${f.where}`, 'free some space there; nothing was changed');
  }
}

async function planFolders(ctx: TaskContext, e: RestoreEnv, s: RestoreState, project?: ComposeProject): Promise<FolderCmds[]> {
  const others = folderPartsOf(s);
  if (!others.length) return [];
  const { describeEngine } = await import('../tools/engine.ts');
  const remote = (await describeEngine(ctx.probe, ctx.env.values, path.join(ctx.root, '.cache', 'compose-tasks'))).remote;
  const out: FolderCmds[] = [];
  for (const part of others) {
    const file = s.files[part.name] ?? path.join(e.work, part.file);
    out.push(
      await planFolder(ctx, {
        part,
        file,
        project,
        stamp: e.stamp,
        fromDb: s.manifest?.database || undefined,
        toDb: s.target,
        names: s.listings[part.name]?.names,
        remote,
      }),
    );
  }
  return out;
}

async function askRestore(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<void> {
  const { formatBytes } = await import('../core/log.ts');
  const { manifest, target } = s;
  const size = fs.existsSync(s.file) ? fs.statSync(s.file).size : 0;
  const partNames = manifest ? manifest.parts.filter((p) => s.selected.includes(p.name)).map((p) => p.name) : ['(all parts)'];
  const skip = e.o.noSafetyBackup;
  const app = ctx.config.appServices.join(', ');
  const kept = s.safetyParts.length ? ` (kept aside, then saved as a safety backup of ${s.safetyParts.join(', ')})` : '';
  const lines = [
    `Restore ${s.name}` +
      (manifest ? ` (taken ${manifest.createdAt}${manifest.appEnv ? ` in APP_ENV=${manifest.appEnv}` : ''}, ${formatBytes(size)})` : ''),
    `  into database ${target} on ${e.pg.describeTarget(e.t)}, APP_ENV=${ctx.env.appEnv}${e.o.as ? ' (--as)' : ''}`,
    `  parts: ${partNames.join(', ')}`,
    s.targetExists || !dbPartOf(s)
      ? `  the current ${partNames.join(', ')} will be REPLACED${kept || (skip ? ' (no safety backup: --no-safety-backup)' : '')}`
      : `  database ${target} does not exist yet: it will be created`,
    ...(s.project && app
      ? [
          `  ${app} keeps serving while the backup loads; it is stopped only for the swap and its restart (seconds).`,
          '  Changes made until the swap stay only in the previous copy.',
        ]
      : []),
  ];
  await ctx.confirm({ message: lines.join('\n'), typed: target, requireForce: ctx.env.appEnv === 'production', force: e.o.force });
}

/** The app services that run now (read after the answer: a prompt can wait a long time). A dry run names them all. */
async function runningApp(ctx: TaskContext, project?: ComposeProject): Promise<string[]> {
  const app = ctx.config.appServices;
  if (!project || !app.length) return [];
  if (ctx.runner.dryRun) return app;
  const { containerStates } = await import('../tools/compose.ts');
  const states = await containerStates(ctx.probe, project, app);
  return [...new Set(states.filter((st) => st.status === 'running' || st.status === 'restarting').map((st) => st.service))];
}

/**
 * After the commit: the safety archive (reason pre-restore) of the parts replaced, written from the previous copies
 * while the app already serves. It cannot fail the restore, which is done: a failure keeps the previous copies instead.
 */
async function safetyArchive(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<Partial<RestoreState>> {
  const t = e.t;
  if (!s.safetyParts.length) {
    if (!e.o.noSafetyBackup && dbPartOf(s) && !s.targetExists) ctx.log.info(`no safety backup: database ${s.target} does not exist yet`);
    else if (!e.o.noSafetyBackup && e.o.as && s.targetExists && s.target !== t.database)
      ctx.log.warn(`no safety backup of ${s.target} (backups cover ${t.database}); the previous ${s.target} is kept as ${s.old}`);
    return {};
  }
  const paths = Object.fromEntries(s.folders.filter((f) => s.safetyParts.includes(f.part)).map((f) => [f.part, f.previous]));
  const from = [s.targetExists && s.old ? `database ${s.old}` : '', ...Object.entries(paths).map(([p, at]) => `${p} in ${at}`)];
  if (ctx.runner.dryRun) {
    ctx.log.info(`[dry-run] would write the safety backup of ${s.safetyParts.join(', ')} from ${from.filter(Boolean).join(', ')}`);
    return {};
  }
  ctx.log.step(`safety backup of the replaced ${s.safetyParts.join(', ')} (reason: pre-restore), from the copies kept aside`);
  try {
    const { runBackup } = await import('./backup.ts');
    // Not pruned (it could remove the archive being restored); the restore already holds the change lock.
    const r = await runBackup(ctx, {
      reason: 'pre-restore',
      prune: false,
      lock: false,
      only: s.safetyParts.join(','),
      from: { database: s.targetExists ? s.old : undefined, paths },
    });
    ctx.log.success(`safety backup: ${r.name} (roll back with: ${rollbackCommand(r.name)})`);
    return { safetyName: r.name };
  } catch (err) {
    const kept = [s.old && s.targetExists ? `database ${s.old}` : '', ...s.folders.map((f) => `${f.part} in ${f.previous}`)].filter(
      Boolean,
    );
    ctx.log.warn(
      `the restore is done, but its safety backup failed: ${(err as Error).message.split('\n')[0]}; ` +
        `the previous copies are kept instead: ${kept.join(', ')}`,
    );
    return { keepOld: true };
  }
}

/** Just before the app stops: no other role's session on the database (named), and which app services run now. */
async function checkBeforeSwap(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<Partial<RestoreState>> {
  if (s.temp && s.targetExists && !ctx.runner.dryRun) await refuseOtherSessions(ctx, e.pg, e.t, s.target);
  return { stopped: await runningApp(ctx, s.project) };
}

async function stopApp(ctx: TaskContext, s: RestoreState): Promise<void> {
  if (!s.project || !s.stopped.length) return;
  ctx.log.step(`stopping ${s.stopped.join(', ')} (the database keeps running)`);
  const { compose } = await import('../tools/compose.ts');
  await ctx.runner.run({ argv: compose.stop(s.project, s.stopped) });
}

async function startApp(ctx: TaskContext, s: RestoreState): Promise<void> {
  if (!s.project || !s.stopped.length) return;
  const { compose } = await import('../tools/compose.ts');
  await ctx.runner.run({ argv: compose.start(s.project, s.stopped) });
}

async function restoreSide(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<void> {
  const part = dbPartOf(s);
  if (!part || !s.temp) return;
  const dump = s.files[part.name] ?? path.join(e.work, part.file);
  ctx.log.step(`loading the backup into ${s.temp} while the app serves (pg_restore -j ${s.jobs})`);
  const t0 = Date.now();
  await e.pg.restoreDump(ctx, e.t, { file: dump, database: s.temp, jobs: s.jobs, format: 'custom' });
  const { formatDuration } = await import('../core/log.ts');
  if (!ctx.runner.dryRun) ctx.log.info(`database restored in ${formatDuration(Date.now() - t0)}`);
}

async function unpackFolders(ctx: TaskContext, s: RestoreState): Promise<void> {
  await Promise.all(s.folders.map((f) => stageFolder(ctx, f)));
}

/**
 * Every folder's swap back (each one tried; the first failure is rethrown after the rest ran). A one-off container
 * that cannot start (its image is not on the remote engine, the folder's parent is missing there) never ran the
 * stage or the swap either: there is nothing to put back.
 */
async function foldersBack(ctx: TaskContext, s: RestoreState): Promise<void> {
  const { explainHostPathError } = await import('../tools/engine.ts');
  const back = (f: FolderCmds) =>
    ctx.runner.run(f.back).catch((err: unknown) => {
      const why = f.image ? explainHostPathError(err, f.image, f.dest) : err;
      if (why !== err && why instanceof TaskError && why.exitCode === ExitCode.prerequisite) return;
      throw err;
    });
  const results = await Promise.allSettled(s.folders.map(back));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

async function swapFolders(ctx: TaskContext, s: RestoreState): Promise<void> {
  for (const f of s.folders) {
    ctx.log.step(`swapping ${f.part} in at ${f.where}`);
    await ctx.runner.run(f.swap);
  }
}

async function removeOldFolders(ctx: TaskContext, s: RestoreState): Promise<void> {
  if (s.keepOld) {
    for (const f of s.folders) ctx.log.info(`the previous ${f.part} is kept in ${f.previous}`);
    return;
  }
  await Promise.all(
    s.folders.map((f) =>
      ctx.runner.run(f.remove).catch((err: unknown) => ctx.log.warn(`cleanup after the restore: ${(err as Error).message}`)),
    ),
  );
}

async function startAndCheckApp(ctx: TaskContext, s: RestoreState): Promise<void> {
  const app = ctx.config.appServices;
  if (s.project && s.stopped.length) {
    ctx.log.step(`starting ${s.stopped.join(', ')} and waiting until healthy`);
    const { upAndWait } = await import('../tasks/stack.ts');
    await upAndWait(ctx, s.stopped);
    await appHealthCheck(ctx, s);
  } else if (app.length && !s.stopped.length) {
    ctx.log.info(`${app.join(', ')} ${app.length > 1 ? 'were' : 'was'} not running: not started (start the stack: tasks dev)`);
  }
}

/** The project's health check (config.healthCheck) in its service, when this restore started that service. */
async function appHealthCheck(ctx: TaskContext, s: RestoreState): Promise<void> {
  const hc = ctx.config.healthCheck;
  if (!s.project || !hc || !s.stopped.includes(hc.service)) return;
  const { compose } = await import('../tools/compose.ts');
  await ctx.runner.run({ argv: compose.exec(s.project, hc.service, hc.command), stdout: 'ignore', stderr: 'capture' });
}

/** For tasks recover: the restored database is in place (no side copy left to swap) and answers, and the app is healthy. */
async function stillHealthy(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<boolean> {
  try {
    if (s.temp && (await e.pg.databaseExists(ctx, e.t, s.temp))) return false;
    await checkDatabase(ctx, e, s);
    await appHealthCheck(ctx, s);
    return true;
  } catch {
    return false;
  }
}

async function checkDatabase(ctx: TaskContext, e: RestoreEnv, s: RestoreState): Promise<void> {
  if (!s.temp || ctx.runner.dryRun) return;
  const n = await e.pg.psqlQuery(ctx, e.t, 'SELECT count(*) FROM pg_catalog.pg_class', { database: s.target });
  if (!(Number(n) > 0)) throw new TaskError(`database ${s.target} answers but looks empty after the restore`);
}

// ---------------------------------------------------------------------------------------------
// The task

export const restore = defineTask({
  name: 'restore',
  description: 'Restore a backup (local, else from S3): verified, asks, loaded beside the live copy, swapped in, checked, safety backup',
  group: 'backups',
  args: { name: { description: 'backup name (with or without .tar.gz) or "latest"', required: true } },
  options: {
    only: { type: 'string', description: 'restore only these parts: db,filestore,addons', placeholder: 'parts' },
    force: { type: 'boolean', description: 'accept a backup from another project or APP_ENV; with --yes, confirm in production' },
    noSafetyBackup: { type: 'boolean', description: 'skip the safety archive of the replaced state (the swap still keeps it until done)' },
    noRollback: { type: 'boolean', description: 'keep the restored state when the health check fails (prints how to swap back)' },
    jobs: { type: 'string', description: 'parallel pg_restore jobs (default: min(4, cores))', placeholder: 'n' },
    as: {
      type: 'string',
      description: 'restore into this database name instead (its filestore goes to filestore/<name>)',
      placeholder: 'dbname',
    },
    keepOld: { type: 'boolean', description: 'keep the previous database (<db>_old_<time>) and folders instead of dropping them' },
  },
  example: 'tasks restore odoo_backup_2026-11-20_02-00-00 --only db,filestore',
  async run(ctx) {
    const jobs = restoreJobs(ctx.opts.jobs, os.availableParallelism());
    if (ctx.opts.as !== undefined && !/^[A-Za-z_][A-Za-z0-9_-]{0,40}$/.test(ctx.opts.as)) {
      throw usage(`--as ${ctx.opts.as}: a database name of letters, digits, _ and - (at most 40 characters)`);
    }
    const pg: Pg = await import('../tools/postgres.ts');
    const started = Date.now();
    // Nothing else that changes a database or the backup folder runs at the same time (scripts/core/lock.ts); a restore
    // or backup killed earlier is finished or undone first (with --yes), or named and refused.
    await (await import('./leftovers.ts')).takeChangeLock(ctx, 'restore');
    const t = pg.pgTarget(ctx);
    const stamp = restoreStamp(new Date());
    const work = path.join(backupDir(ctx), `.restore-${stamp}-${process.pid}`);
    ctx.onCleanup(() => fs.rmSync(work, { recursive: true, force: true }));
    const e: RestoreEnv = { o: ctx.opts, pg, t, work, stamp };
    const init: RestoreState = {
      ...emptyRestoreState(ctx.opts.as ?? t.database),
      input: ctx.args.name,
      name: bareName(ctx.args.name),
      jobs,
    };
    const plan = restorePlan(e);
    const hooks = journalHooks(openJournal(backupDir(ctx), 'restore'), (s: RestoreState) => restoreFacts(s, e), RESTORE_COMMIT_POINT);
    let reached = -1;
    let s: RestoreState;
    try {
      s = await runPlan(ctx, plan, init, {
        ...hooks,
        beforeStep: (step, i, st) => {
          reached = i;
          hooks.beforeStep(step, i, st);
        },
      });
    } catch (err) {
      const at = (name: string) => plan.findIndex((st) => st.name === name);
      const reach = reached >= at('stop the app') ? 'live' : reached > at('confirm') ? 'side' : 'none';
      throw afterFailure(err, reach, Boolean(ctx.opts.noRollback));
    }
    fs.rmSync(work, { recursive: true, force: true });
    const { formatDuration } = await import('../core/log.ts');
    ctx.log.success(
      `${ctx.runner.dryRun ? '[dry-run] would restore' : 'restored'} ${s.name} into ${s.target} ` +
        `in ${formatDuration(Date.now() - started)}` +
        `${s.safetyName ? ` (safety backup: ${s.safetyName})` : ''}`,
    );
  },
});

/** A restore state with nothing found yet (the plan's start, and what tasks recover fills from a journal). */
export function emptyRestoreState(target: string): RestoreState {
  return {
    input: '',
    target,
    jobs: 1,
    name: '',
    file: '',
    downloaded: false,
    selected: [],
    files: {},
    listings: {},
    safetyParts: [],
    targetExists: false,
    keepOld: false,
    stopped: [],
    folders: [],
  };
}

/**
 * The error of a failed restore: once side copies were made ('side') or the app was stopped ('live') and every undo
 * ran, it says nothing was changed; when an undo did not finish, the journal is kept and the hint names tasks recover.
 */
function afterFailure(err: unknown, reached: 'none' | 'side' | 'live', kept: boolean): unknown {
  if (!(err instanceof TaskError)) return err;
  if (err.exitCode === ExitCode.unhealthy && !err.message.includes('; the undo did not finish: '))
    return kept
      ? err
      : new TaskError(`${err.message}; swapped back: the previous database and folders are live again`, {
          exitCode: err.exitCode,
          hint: err.hint,
          cause: err,
        });
  if (err.message.includes('; the undo did not finish: '))
    return new TaskError(err.message, {
      exitCode: err.exitCode,
      hint: 'tasks recover retries what was not undone (the warnings above say what failed)',
      cause: err,
    });
  if (reached === 'none' || err.message.includes('nothing was changed')) return err;
  const how = reached === 'live' ? 'the previous state is back' : 'the live database and folders were not touched';
  return new TaskError(`${err.message}; nothing was changed (${how})`, {
    exitCode: err.exitCode,
    hint: err.hint,
    cause: err,
  });
}

/**
 * A backup from another project or APP_ENV is refused unless --force (old backup.sh archives do not say); a backup of
 * another database (backup.info's "Database:" in old archives) unless --as names the target or --force.
 */
function checkOrigin(ctx: TaskContext, name: string, manifest: ArchiveManifest, target: string, o: RestoreEnv['o']): void {
  const project = ctx.env.get('COMPOSE_PROJECT_NAME');
  const problems: string[] = [];
  if (!manifest.legacy && project && manifest.project && manifest.project !== project)
    problems.push(`it was taken from project ${manifest.project}, this is ${project}`);
  if (!manifest.legacy && manifest.appEnv && manifest.appEnv !== ctx.env.appEnv)
    problems.push(`it was taken in APP_ENV=${manifest.appEnv}, this is APP_ENV=${ctx.env.appEnv}`);
  const otherDb = Boolean(manifest.database && manifest.database !== target && o.as === undefined);
  if (otherDb) problems.push(`it is a backup of database ${manifest.database}, this restores into ${target}`);
  if (problems.length && !o.force)
    throw refused(
      `${name}: ${problems.join('; ')}: refused`,
      otherDb && problems.length === 1
        ? `pass --as ${target} to restore it into ${target} anyway (or --force)`
        : 'pass --force if this is really the backup to restore here',
    );
  for (const p of problems) ctx.log.warn(`${name}: ${p} (accepted by --force)`);
}

/** Open sessions of other roles on the target: refused before anything is stopped, naming each one to close. */
async function refuseOtherSessions(ctx: TaskContext, pg: Pg, t: PgTarget, target: string): Promise<void> {
  const others = await pg.otherRoleSessions(ctx, t, target);
  if (!others.length) return;
  const shown = others
    .slice(0, 5)
    .map((s) => `role ${s.role}${s.application ? ` (application "${s.application}")` : ''}, pid ${s.pid}`)
    .join('; ');
  throw refused(
    `database ${target} has ${others.length} open session${others.length > 1 ? 's' : ''} of another role: ` +
      `${shown}${others.length > 5 ? '; …' : ''}; nothing was changed`,
    `close ${others.length > 1 ? 'them' : 'it'} (or, as a superuser: SELECT pg_terminate_backend(${others[0]!.pid})), then retry`,
  );
}

export const restoreTasks: AnyTask[] = [restore];
