// restore <name>: verify, confirm, safety backup, restore into a new database, swap, restart, health check.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineTask, type AnyTask, type TaskContext } from '../core/define.ts';
import { ExitCode, TaskError, refused, usage } from '../core/errors.ts';
import { parseBackupName, selectParts } from './manifest.ts';
import { archiveFile, assertFree, backupDir, bareName, downloadArchive, localBackups, resolveName, s3Of } from './store.ts';
import { uninterruptible } from '../core/plan.ts';
import type { Cmd } from '../core/runner.ts';
import type { ManifestPart } from './manifest.ts';

type Pg = typeof import('../tools/postgres.ts');
type PgTarget = import('../tools/postgres.ts').PgTarget;
type ArchiveManifest = import('./archive.ts').ArchiveManifest;

// ---------------------------------------------------------------------------------------------
// Pure helpers (unit-tested)

/** `2026-11-22T05:59:01Z` → `20261122055901`: the suffix of the temporary and previous database names. */
export function restoreStamp(d: Date): string {
  return d.toISOString().slice(0, 19).replace(/[-:T]/g, '');
}

/** `<db>_<kind>_<stamp>`, shortened so it fits PostgreSQL's 63-byte identifiers. */
export function sideDatabaseName(db: string, kind: 'restore' | 'old' | 'failed', stamp: string): string {
  const suffix = `_${kind}_${stamp}`;
  return `${db.slice(0, 63 - suffix.length)}${suffix}`;
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

/**
 * How a folder's tar is laid out, from its member names: `strip` leading components (an old archive holding the
 * folder itself, e.g. `filestore/<db>/…`), and `into` a sub-folder (a tar of one database's filestore contents).
 */
export function folderLayout(names: string[], folder: string, database?: string): { strip: number; into: string } {
  const clean = names.map((n) => n.replace(/^(\.\/)+/, '').replace(/\/$/, '')).filter((n) => n && n !== '.');
  if (!clean.length) return { strip: 0, into: '' };
  const underFolder = clean.every((n) => n === folder || n.startsWith(`${folder}/`));
  const strip = underFolder ? 1 : 0;
  const rest = clean.map((n) => n.split('/').slice(strip).join('/')).filter(Boolean);
  const tops = new Set(rest.map((n) => n.split('/')[0]!));
  if (database && !tops.has(database) && tops.size > 0 && [...tops].every((t) => /^[0-9a-f]{2}$/.test(t) || t === 'checklist')) {
    return { strip, into: database };
  }
  return { strip, into: '' };
}

/**
 * Unpacks a folder part from a tar on stdin into $work/new (next to the folder, same filesystem), renames the database
 * folder for --as and sets the owner. The live folder is not touched yet. Runs on the host (path parts) or as root in
 * the service (volumes), while the database is being restored.
 *   $1 dest  $2 work  $3 strip  $4 into  $5 from  $6 to  $7 owner  $8 gz(1|'')
 */
export const STAGE_SCRIPT = [
  'set -euo pipefail',
  'dest=$1 work=$2 strip=$3 into=$4 from=$5 to=$6 owner=$7 gz=$8',
  'stage=$work/new',
  // owner "=": the folder's own owner (its parent's when new), for a path part restored as root on a remote engine.
  'if [ "$owner" = = ]; then owner=$(stat -c %u:%g "$dest" 2>/dev/null || stat -c %u:%g "$(dirname "$dest")"); fi',
  'rm -rf "$work"; mkdir -p "$stage/$into" "$work/old" "$dest"; : > "$work/added"',
  'tar -x ${gz:+-z} --no-same-owner --no-same-permissions --strip-components="$strip" -C "$stage/$into" -f -',
  'if [ -n "$from" ] && [ "$from" != "$to" ] && [ -e "$stage/$from" ]; then rm -rf "${stage:?}/$to"; mv "$stage/$from" "$stage/$to"; fi',
  'if [ -n "$owner" ]; then chown -R "$owner" "$stage"; fi',
].join('\n');

/**
 * Swaps the staged entries in by rename, keeping the previous ones in $work/old until `commit` (rm -rf $work) or
 * SWAP_BACK_SCRIPT. entries: only the top-level entries in the archive (filestore/<db>); whole: the folder itself.
 *   $1 dest  $2 work  $3 mode(entries|whole)
 */
export const SWAP_SCRIPT = [
  'set -euo pipefail',
  'dest=$1 work=$2 mode=$3 stage=$2/new old=$2/old',
  'shopt -s dotglob nullglob',
  'if [ "$mode" = whole ]; then',
  '  mv "$dest" "$old/folder"; mv "$stage" "$dest"; echo whole > "$work/added"',
  'else',
  '  for e in "$stage"/*; do n=${e##*/}; if [ -e "$dest/$n" ] || [ -L "$dest/$n" ]; then mv "$dest/$n" "$old/$n"; fi; ' +
    'mv "$e" "$dest/$n"; printf "%s\\n" "$n" >> "$work/added"; done',
  'fi',
].join('\n');

/** Puts the previous entries back (undoing SWAP_SCRIPT; after STAGE_SCRIPT alone it only removes $work).  $1 dest  $2 work */
export const SWAP_BACK_SCRIPT = [
  'set -uo pipefail',
  'dest=$1 work=$2 old=$2/old',
  '[ -d "$work" ] || exit 0',
  'shopt -s dotglob nullglob',
  'if [ "$(head -n1 "$work/added" 2>/dev/null)" = whole ]; then',
  '  if [ -d "$old/folder" ]; then rm -rf "${dest:?}"; mv "$old/folder" "$dest"; fi',
  'else',
  '  while IFS= read -r n; do [ -n "$n" ] && rm -rf "${dest:?}/$n"; done < "$work/added"',
  '  for e in "$old"/*; do mv "$e" "$dest/${e##*/}"; done',
  'fi',
  'rm -rf "$work"',
].join('\n');

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
// The task

interface Undo {
  what: string;
  run: () => Promise<void>;
}

const isInterrupt = (err: unknown) => err instanceof TaskError && (err.exitCode === ExitCode.sigint || err.exitCode === ExitCode.sigterm);

export const restore = defineTask({
  name: 'restore',
  description: 'Restore a backup (local, else from S3): verified first, asks, safety backup, new database swapped in, health check',
  group: 'backups',
  args: { name: { description: 'backup name (with or without .tar.gz) or "latest"', required: true } },
  options: {
    only: { type: 'string', description: 'restore only these parts: db,filestore,addons', placeholder: 'parts' },
    force: { type: 'boolean', description: 'accept a backup from another project or APP_ENV; with --yes, confirm in production' },
    noSafetyBackup: { type: 'boolean', description: 'skip the backup of the current state taken first' },
    jobs: { type: 'string', description: 'parallel pg_restore jobs (default: min(4, cores))', placeholder: 'n' },
    as: {
      type: 'string',
      description: 'restore into this database name instead (its filestore goes to filestore/<name>)',
      placeholder: 'dbname',
    },
    keepOld: { type: 'boolean', description: 'keep the previous database as <db>_old_<time> instead of dropping it' },
  },
  example: 'tasks restore odoo_backup_2026-11-20_02-00-00 --only db,filestore',
  async run(ctx) {
    const skipSafety = ctx.opts.noSafetyBackup;
    const dry = ctx.runner.dryRun;
    const jobs = restoreJobs(ctx.opts.jobs, os.availableParallelism());
    if (ctx.opts.as !== undefined && !/^[A-Za-z_][A-Za-z0-9_-]{0,40}$/.test(ctx.opts.as)) {
      throw usage(`--as ${ctx.opts.as}: a database name of letters, digits, _ and - (at most 40 characters)`);
    }
    const pg: Pg = await import('../tools/postgres.ts');
    const archiveMod = await import('./archive.ts');
    const { formatBytes, formatDuration } = await import('../core/log.ts');
    const started = Date.now();

    // Nothing else that changes a database or the backup folder runs at the same time (scripts/core/lock.ts).
    await (await import('./leftovers.ts')).takeChangeLock(ctx, 'restore');

    // 1. Find the archive.
    const loc = await locate(ctx, ctx.args.name);
    const name = loc.name;
    const discard = () => {
      if (loc.downloaded) fs.rmSync(loc.file, { force: true });
    };

    // 2. Verify everything before touching anything.
    const t: PgTarget = pg.pgTarget(ctx);
    const target = ctx.opts.as ?? t.database;
    const dir = backupDir(ctx);
    const work = path.join(dir, `.restore-${name}-${process.pid}`);
    ctx.onCleanup(() => fs.rmSync(work, { recursive: true, force: true }));

    // With --yes nothing waits at a prompt, so which app services are running is read now, alongside the checks
    // (a read-only `compose ps`); after a prompt it is read once the answer is in.
    const appServices = ctx.config.appServices;
    const earlyStates =
      ctx.global.yes && !dry && appServices.length
        ? (async () => (await import('../tools/compose.ts')).containerStates(ctx.probe, await ctx.compose(), appServices))()
        : undefined;
    earlyStates?.catch(() => undefined);

    let manifest: ArchiveManifest | undefined;
    let files: Record<string, string> = {};
    let selected = new Set<string>();
    /** Versions (server vs dump) and a full read of the dump; settles to its error, if any. */
    let dumpCheck: Promise<unknown> | undefined;
    /** Folder part → its checked member names (listFolderPart), started as each part is unpacked. */
    const listings = new Map<string, Promise<string[]>>();
    const names = new Map<string, string[]>();
    let serverMajor: number | undefined;
    const settle = (p: Promise<void>): Promise<unknown> =>
      p.then(
        () => undefined,
        (e: unknown) => e,
      );
    const checkDump = async (dump: string, m: ArchiveManifest): Promise<void> => {
      const part = m.parts.find((p) => p.kind === 'database')!;
      const [server, header] = await Promise.all([pg.serverVersion(ctx, t), pg.dumpHeader(ctx, t, dump)]);
      serverMajor = server.major;
      const fromManifest = m.serverVersion ? pg.parseVersion(m.serverVersion) : undefined;
      const dumpedFrom = header.dumpedFrom ? pg.parseVersion(header.dumpedFrom) : fromManifest;
      for (const v of [fromManifest, dumpedFrom]) {
        if (v) pg.assertDumpCompatible({ server, dumpedFrom: v, file: `${name} (${part.file})` });
      }
      ctx.log.step(`reading the whole dump (${formatBytes(part.size)})`);
      await pg.verifyDump(ctx, t, dump);
    };
    if (dry && loc.downloaded) {
      ctx.log.info(
        `[dry-run] would verify ${name} (manifest checksums, members, a full read of the dump, PostgreSQL version) once downloaded`,
      );
    } else {
      ctx.log.step(`verifying ${name}`);
      try {
        manifest = await archiveMod.readManifest(loc.file);
        selected = new Set(selectParts(manifest.parts, ctx.opts.only, 'this backup').map((p) => p.name));
        // From the manifest alone, so before anything is unpacked.
        checkOrigin(ctx, name, manifest, target);
        // extractArchive lists and checks every member before writing anything; a dry run only lists them.
        if (dry) archiveMod.checkMembers(loc.file, await archiveMod.listMembers(loc.file), manifest);
        const need = manifest.parts.filter((p) => selected.has(p.name)).reduce((n, p) => n + p.size, 0);
        if (!dry) {
          fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
          assertFree(dir, need, `unpack ${name}`);
          // The dump is the first part in our archives: its checks (versions, a full read) start as soon as it is
          // unpacked and its checksum matched, while the other parts are still unpacking.
          const res = await archiveMod
            .extractArchive(loc.file, work, {
              only: (p) => selected.has(p.name),
              signal: ctx.signal,
              onPart: (p, file) => {
                if (p.kind === 'database') {
                  if (!dumpCheck) dumpCheck = settle(checkDump(file, manifest!));
                  return;
                }
                // A folder's own tar is listed and checked as soon as it is unpacked, while the rest unpacks.
                const listing = listFolderPart(ctx, name, p, file);
                listing.catch(() => undefined);
                listings.set(p.name, listing);
              },
            })
            .catch(async (err: unknown) => {
              await dumpCheck;
              throw err;
            });
          files = res.files;
          for (const [part, listing] of listings) names.set(part, await listing);
          if (manifest.legacy)
            ctx.log.warn(
              `${name} is an old backup.sh archive: it has no checksums to verify ` +
                '(sizes, members and a full read of the dump are still checked)',
            );
        }
      } catch (err) {
        discard();
        throw err;
      }
    }
    if (loc.downloaded && !dry) {
      const final = loc.publish!();
      loc.file = final;
      loc.downloaded = false;
      ctx.log.info(`downloaded to ${path.relative(ctx.root, final)}`);
    }

    const dbPart = manifest?.parts.find((p) => p.kind === 'database' && selected.has(p.name));
    const otherParts = manifest?.parts.filter((p) => p.kind !== 'database' && selected.has(p.name)) ?? [];

    if (dbPart && (!dry || fs.existsSync(files[dbPart.name] ?? ''))) {
      const error = await (dumpCheck ?? settle(checkDump(files[dbPart.name]!, manifest!)));
      if (error) throw error;
    }
    if (manifest)
      ctx.log.success(
        `${name} verified` +
          (manifest.legacy
            ? ' (old backup.sh archive: sizes, members and dump checked; no checksums)'
            : ': checksums, sizes, members and dump'),
      );

    // 3. Confirm.
    const targetExists = dbPart ? await pg.databaseExists(ctx, t, target) : false;
    // Sessions of the app's own role are ended at the swap; another role's would only fail it, after the app was stopped.
    if (targetExists && !dry) await refuseOtherSessions(ctx, pg, t, target);
    const size = fs.existsSync(loc.file) ? fs.statSync(loc.file).size : 0;
    const partNames = manifest ? manifest.parts.filter((p) => selected.has(p.name)).map((p) => p.name) : ['(all parts)'];
    const safety = !skipSafety && targetExists && target === t.database;
    const lines = [
      `Restore ${name}` +
        (manifest ? ` (taken ${manifest.createdAt}${manifest.appEnv ? ` in APP_ENV=${manifest.appEnv}` : ''}, ${formatBytes(size)})` : ''),
      `  into database ${target} on ${pg.describeTarget(t)}, APP_ENV=${ctx.env.appEnv}${ctx.opts.as ? ' (--as)' : ''}`,
      `  parts: ${partNames.join(', ')}`,
      targetExists || !dbPart
        ? `  the current ${partNames.join(', ')} will be REPLACED` +
          `${safety ? ' (a safety backup is taken first)' : skipSafety ? ' (no safety backup: --no-safety-backup)' : ''}`
        : `  database ${target} does not exist yet: it will be created`,
    ];
    await ctx.confirm({ message: lines.join('\n'), typed: target, requireForce: ctx.env.appEnv === 'production', force: ctx.opts.force });

    // 4. Safety backup of the current state.
    let safetyName: string | undefined;
    if (safety) {
      ctx.log.step('safety backup of the current state (reason: pre-restore)');
      const { runBackup } = await import('./backup.ts');
      // Not pruned (it could remove the archive being restored); the restore already holds the backup lock.
      safetyName = (await runBackup(ctx, { reason: 'pre-restore', prune: false, lock: false })).name;
      ctx.log.success(`safety backup: ${safetyName} (roll back with: ${rollbackCommand(safetyName)})`);
    } else if (!skipSafety && dbPart && !targetExists) {
      ctx.log.info(`no safety backup: database ${target} does not exist yet`);
    } else if (!skipSafety && ctx.opts.as && targetExists) {
      ctx.log.warn(`no safety backup of ${target} (backups cover ${t.database}); the previous ${target} is kept as ${target}_old_<time>`);
    }

    // 5–7. Stop the app, restore, swap, start, check. Every change registers its undo first.
    const safe = uninterruptible(ctx);
    const stamp = restoreStamp(new Date());
    const undo: Undo[] = [];
    const commit: Array<() => Promise<void>> = [];
    const { describeEngine } = await import('../tools/engine.ts');
    const remote = (await describeEngine(ctx.probe, ctx.env.values, path.join(ctx.root, '.cache', 'compose-tasks'))).remote;
    const needsCompose = appServices.length > 0 || otherParts.some((p) => p.kind === 'volume') || t.mode === 'compose';
    const project = needsCompose ? await ctx.compose() : undefined;
    const { compose } = await import('../tools/compose.ts');
    let stopped: string[] = [];
    let phase: 'restore' | 'health' = 'restore';
    let staging: Promise<unknown> = Promise.resolve();
    // --as into another existing database keeps that one (no safety backup covers it); --as the app's own is a plain restore.
    const keepOld = ctx.opts.keepOld || Boolean(ctx.opts.as && ctx.opts.as !== t.database && targetExists);

    try {
      if (project && appServices.length) {
        const { containerStates } = await import('../tools/compose.ts');
        const states = await (earlyStates ?? containerStates(ctx.probe, project, appServices));
        stopped = dry
          ? appServices
          : [...new Set(states.filter((s) => s.status === 'running' || s.status === 'restarting').map((s) => s.service))];
        if (stopped.length) {
          ctx.log.step(`stopping ${stopped.join(', ')} (the database keeps running)`);
          undo.push({
            what: `start ${stopped.join(', ')}`,
            run: async () => {
              await safe.runner.run({ argv: compose.start(project, stopped) });
            },
          });
          await ctx.runner.run({ argv: compose.stop(project, stopped) });
        }
      }

      // Folder parts unpack beside their folders while the database restores; they are swapped in after it.
      const plans: FolderPlan[] = [];
      for (const part of otherParts) {
        const file = files[part.name] ?? path.join(work, part.file);
        plans.push(
          await planFolder(ctx, safe, {
            part,
            file,
            project,
            name,
            stamp,
            undo,
            commit,
            fromDb: manifest?.database || undefined,
            toDb: target,
            names: names.get(part.name),
            remote,
          }),
        );
      }
      staging = Promise.all(plans.map((pl) => pl.stage()));
      staging.catch(() => undefined);

      if (dbPart) {
        const dump = files[dbPart.name] ?? path.join(work, dbPart.file);
        const temp = sideDatabaseName(target, 'restore', stamp);
        // A previous copy kept by an earlier restore in the same second (--keep-old) keeps its name: this one gets _2, _3, …
        let old = sideDatabaseName(target, 'old', stamp);
        for (let n = 2; targetExists && !dry && (await pg.databaseExists(ctx, t, old)); n++)
          old = sideDatabaseName(target, 'old', `${stamp}_${n}`);
        ctx.log.step(`restoring the database into ${temp} (pg_restore -j ${jobs})`);
        undo.push({ what: `drop ${temp}`, run: () => pg.dropDatabase(safe, t, temp, { force: true }) });
        await pg.createDatabase(ctx, t, temp, t.user);
        const t0 = Date.now();
        if (dry)
          await ctx.runner.run(
            pg.clientCmd(
              t.mode === 'compose' ? project : undefined,
              t,
              'pg_restore',
              pg.pgRestoreArgs({ database: temp, role: t.user, jobs, file: dump }),
            ),
          );
        else await pg.restoreDump(ctx, t, { file: dump, database: temp, jobs, format: 'custom' });
        ctx.log.info(`database restored in ${formatDuration(Date.now() - t0)}`);
        ctx.log.step(`swapping ${temp} in as ${target}`);
        if (targetExists) {
          await pg.swapDatabases(ctx, t, { live: target, incoming: temp, aside: old, serverMajor });
          undo.push({
            what: `put ${target} back`,
            run: async () => {
              const failed = sideDatabaseName(target, 'failed', stamp);
              if (await pg.databaseExists(safe, t, target)) {
                await pg.terminateSessions(safe, t, target);
                await pg.renameDatabase(safe, t, target, failed);
                undo.push({ what: `drop ${failed}`, run: () => pg.dropDatabase(safe, t, failed, { force: true }) });
              }
              await pg.renameDatabase(safe, t, old, target);
            },
          });
        } else {
          await pg.renameDatabase(ctx, t, temp, target);
        }
        if (targetExists && !keepOld)
          commit.push(async () => {
            await pg.dropDatabase(safe, t, old, { force: true });
          });
        if (targetExists && keepOld)
          commit.push(async () => {
            ctx.log.info(`the previous database is kept as ${old}`);
          });
      }

      await staging;
      for (const pl of plans) await pl.swap();

      // Start and check.
      phase = 'health';
      if (project && stopped.length) {
        ctx.log.step(`starting ${stopped.join(', ')} and waiting until healthy`);
        const { upAndWait } = await import('../tasks/stack.ts');
        await upAndWait(ctx, stopped);
        undo.splice(0, undo.findIndex((u) => u.what.startsWith('start ')) + 1);
        if (ctx.config.healthCheck && stopped.includes(ctx.config.healthCheck.service)) {
          await ctx.runner.run({
            argv: compose.exec(project, ctx.config.healthCheck.service, ctx.config.healthCheck.command),
            stdout: 'ignore',
            stderr: 'capture',
          });
        }
      } else if (appServices.length && !stopped.length) {
        ctx.log.info(
          `${appServices.join(', ')} ${appServices.length > 1 ? 'were' : 'was'} not running: not started (start the stack: tasks dev)`,
        );
      }
      if (dbPart && !dry) {
        const n = await pg.psqlQuery(ctx, t, 'SELECT count(*) FROM pg_catalog.pg_class', { database: target });
        if (!(Number(n) > 0)) throw new TaskError(`database ${target} answers but looks empty after the restore`);
      }
    } catch (err) {
      await staging.catch(() => undefined); // never undo under a running tar
      if (phase === 'health' && !isInterrupt(err)) {
        // The restore itself is in place: keep the previous database and say how to roll back.
        const back = safetyName ? rollbackCommand(safetyName) : undefined;
        const oldNote = dbPart && targetExists ? `; the previous database is kept as ${sideDatabaseName(target, 'old', stamp)}` : '';
        throw new TaskError(`restored ${name}, but the application is unhealthy: ${(err as Error).message.split('\n')[0]}${oldNote}`, {
          exitCode: ExitCode.unhealthy,
          hint: back
            ? `roll back with: ${back}`
            : `see the logs (tasks logs); no safety backup was taken${oldNote ? ', rename the kept database back to roll back' : ''}`,
          cause: err,
        });
      }
      ctx.log.warn(`restore failed: ${(err as Error).message.split('\n')[0]}; putting everything back`);
      const unfinished: string[] = [];
      for (const u of undo.reverse()) {
        try {
          await u.run();
        } catch (e) {
          unfinished.push(u.what);
          ctx.log.warn(`could not ${u.what}: ${(e as Error).message}${e instanceof TaskError && e.hint ? ` (${e.hint})` : ''}`);
        }
      }
      if (unfinished.length)
        throw new TaskError(`${(err as Error).message.split('\n')[0]}; the rollback did not finish: ${unfinished.join(', ')}`, {
          exitCode: err instanceof TaskError ? err.exitCode : ExitCode.failure,
          hint: 'finish it with the commands in the warnings above',
          cause: err,
        });
      if (err instanceof TaskError) {
        throw new TaskError(`${err.message}; nothing was changed (the previous state is back)`, {
          exitCode: err.exitCode,
          hint: err.hint,
          cause: err,
        });
      }
      throw err;
    }
    // Dropping the previous database and removing the previous folders do not depend on each other.
    await Promise.all(commit.map((c) => c().catch((e: unknown) => ctx.log.warn(`cleanup after the restore: ${(e as Error).message}`))));
    fs.rmSync(work, { recursive: true, force: true });
    ctx.log.success(
      `${dry ? '[dry-run] would restore' : 'restored'} ${name} into ${target} in ${formatDuration(Date.now() - started)}` +
        `${safetyName ? ` (safety backup: ${safetyName})` : ''}`,
    );
  },
});

/**
 * A backup from another project or APP_ENV is refused unless --force (old backup.sh archives do not say); a backup of
 * another database (backup.info's "Database:" in old archives) unless --as names the target or --force.
 */
function checkOrigin(ctx: TaskContext, name: string, manifest: ArchiveManifest, target: string): void {
  const project = ctx.env.get('COMPOSE_PROJECT_NAME');
  const problems: string[] = [];
  if (!manifest.legacy && project && manifest.project && manifest.project !== project)
    problems.push(`it was taken from project ${manifest.project}, this is ${project}`);
  if (!manifest.legacy && manifest.appEnv && manifest.appEnv !== ctx.env.appEnv)
    problems.push(`it was taken in APP_ENV=${manifest.appEnv}, this is APP_ENV=${ctx.env.appEnv}`);
  const otherDb = Boolean(manifest.database && manifest.database !== target && ctx.opts.as === undefined);
  if (otherDb) problems.push(`it is a backup of database ${manifest.database}, this restores into ${target}`);
  if (problems.length && !ctx.opts.force)
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

interface FolderPlan {
  stage: () => Promise<void>;
  swap: () => Promise<void>;
}

const isGzipPart = (part: ManifestPart) => /\.gz$/.test(part.file) || String(part.format).includes('gz');

/**
 * The member names of a folder part's own tar, checked like the archive's members: an absolute path, `../`, a link
 * pointing outside or anything but files, folders and links refuses the whole backup. Part of the verification,
 * so it runs before anything is touched.
 */
export async function listFolderPart(ctx: TaskContext, backup: string, part: ManifestPart, file: string): Promise<string[]> {
  const r = await ctx.probe.run({
    argv: ['tar', `-t${isGzipPart(part) ? 'z' : ''}vf`, file, '--numeric-owner'],
    stdout: 'capture',
    stderr: 'capture',
  });
  const names: string[] = [];
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const m = /^(\S)\S*\s+\S+\s+\S+\s+\S+\s+\S+\s(.*)$/.exec(line);
    if (!m) continue;
    const type = m[1]!;
    let n = m[2]!;
    let target: string | undefined;
    if (type === 'l') [n, target] = n.split(' -> ') as [string, string];
    if (type === 'h') [n, target] = n.split(' link to ') as [string, string];
    const norm = n.replace(/^(\.\/)+/, '');
    const bad = norm.startsWith('/')
      ? 'absolute path'
      : norm.split('/').includes('..')
        ? 'path leaves the folder'
        : type === 'l' &&
            target !== undefined &&
            (target.startsWith('/') || path.posix.normalize(path.posix.join(path.posix.dirname(norm), target)).startsWith('..'))
          ? `link to ${target} points outside`
          : type === 'h' && target !== undefined && (target.startsWith('/') || target.split('/').includes('..'))
            ? `hard link to ${target} points outside`
            : !['-', 'd', 'l', 'h'].includes(type)
              ? `not a regular file (${type})`
              : undefined;
    if (bad)
      throw new TaskError(`${backup}: ${part.file} is refused: ${n}: ${bad}`, { exitCode: ExitCode.refused, hint: 'nothing was changed' });
    names.push(n);
  }
  return names;
}

/**
 * A folder part (volume in a service, or a path on the host): staged beside the folder, swapped in later, the previous
 * entries kept until the end.
 */
async function planFolder(
  ctx: TaskContext,
  safe: TaskContext,
  o: {
    part: ManifestPart;
    file: string;
    project: import('../tools/compose.ts').ComposeProject | undefined;
    name: string;
    stamp: string;
    undo: Undo[];
    commit: Array<() => Promise<void>>;
    fromDb?: string;
    toDb: string;
    /** The part's member names (listFolderPart), read during the verification; none in a dry run. */
    names?: string[];
    /** The engine is remote: a path part lives on its host and is restored through a one-off container. */
    remote?: boolean;
  },
): Promise<FolderPlan> {
  const { part, file, project } = o;
  const gz = isGzipPart(part) ? '1' : '';
  const cfg = ctx.config.backupParts.find((p) => p.name === part.name);
  const isVolume = part.kind === 'volume';
  const dest = isVolume
    ? (part.path ?? (cfg?.kind === 'volume' ? cfg.path : undefined))
    : path.resolve(ctx.root, part.path ?? (cfg?.kind === 'path' ? cfg.path : part.name));
  if (!dest)
    throw new TaskError(`part ${part.name}: the backup does not say where it goes and tasks.ts has no such part`, {
      exitCode: ExitCode.usage,
    });
  const engine = await import('../tools/engine.ts');
  // A path part on a remote engine: the same scripts, as root in a one-off app container with the folder's parent mounted.
  const onServer = !isVolume && Boolean(o.remote);
  const image = onServer ? await engine.pathPartImage(ctx, cfg?.kind === 'path' ? cfg : { name: part.name }) : undefined;
  const service = part.service ?? (cfg?.kind === 'volume' ? cfg.service : undefined);
  const owner = onServer ? '=' : (part.owner ?? (cfg?.kind === 'volume' ? cfg.owner : undefined) ?? '');
  // Inner member names decide the layout (old archives hold the folder itself).
  let layout = { strip: 0, into: '' };
  if (o.names) {
    layout = folderLayout(
      o.names,
      path.posix.basename(isVolume ? dest : (part.path ?? part.name)),
      part.name === 'filestore' || /filestore/.test(dest) ? o.fromDb || o.toDb : undefined,
    );
  }
  const fromDb = isVolume && layout.into === '' && o.fromDb && o.fromDb !== o.toDb ? o.fromDb : '';
  const into = layout.into ? o.toDb : '';
  const where = isVolume
    ? `${service}:${dest}`
    : `${path.relative(ctx.root, dest) || dest}${onServer ? ` on the engine's host (through ${image})` : ''}`;
  // On the server the folder is seen inside the container, under the mount of its parent.
  const inside = onServer ? engine.inPartMount(dest) : dest;
  // A volume's staging folder goes inside the folder itself: its parent may be outside the volume (a volume mounted at
  // /app/uploads), in the one-off container's own layer, which is gone before the swap runs in the next one.
  const work = isVolume
    ? `${dest.replace(/\/+$/, '')}/.compose-tasks-restore-${part.name}-${o.stamp}`
    : path.posix.join(path.dirname(inside), `.${path.basename(dest)}.restore-${o.stamp}`);
  const args = [inside, work, String(layout.strip), into, fromDb, o.toDb, owner, gz];
  const { compose } = await import('../tools/compose.ts');
  if (isVolume && (!project || !service))
    throw new TaskError(`part ${part.name} is a volume of a service: it needs the compose stack`, { exitCode: ExitCode.prerequisite });
  // Volumes: a one-off root container of the service with the volume mounted (works whether the app runs or not).
  const run = (_c: TaskContext, script: string, a: string[], stdin?: Cmd['stdin']): Cmd => {
    const argv = ['bash', '-c', script, 'bash', ...a];
    return {
      argv: isVolume
        ? compose.run(project!, service!, argv, { noDeps: true, user: 'root' })
        : onServer
          ? engine.hostPathRun(image!, dest, 'bash', argv.slice(1))
          : argv,
      stdin: stdin ?? 'ignore',
      stderr: 'capture',
    };
  };
  o.undo.push({
    what: `put the previous ${part.name} back`,
    run: async () => {
      await safe.runner.run(
        swapBackCmd(safe, run(safe, SWAP_BACK_SCRIPT, [inside, work]), isVolume ? `${o.stamp}-${part.name}` : undefined),
      );
    },
  });
  o.commit.push(async () => {
    await safe.runner.run(run(safe, 'rm -rf -- "$1"', [work]));
  });
  return {
    stage: async () => {
      ctx.log.step(`unpacking ${part.name} beside ${where}${owner && owner !== '=' ? ` (owner ${owner})` : ''}`);
      try {
        await ctx.runner.run(run(ctx, STAGE_SCRIPT, args, { file }));
      } catch (err) {
        throw image ? engine.explainHostPathError(err, image, dest) : err;
      }
    },
    swap: async () => {
      ctx.log.step(`swapping ${part.name} in at ${where}`);
      await ctx.runner.run(run(ctx, SWAP_SCRIPT, [inside, work, isVolume ? 'entries' : 'whole']));
    },
  };
}

/**
 * How long a rollback step of a folder may take (RESTORE_ROLLBACK_TIMEOUT seconds overrides it) before it is stopped
 * and reported with the command that finishes it.
 */
export const ROLLBACK_STEP_MS = 10 * 60_000;

/**
 * A folder's swap back, bounded: a one-off container that never ends (an image whose entrypoint ignores its
 * command) is stopped after ROLLBACK_STEP_MS, removed by name, and the warning says which command finishes it.
 */
function swapBackCmd(safe: TaskContext, cmd: Cmd, oneOff?: string): Cmd {
  const manual = safe.runner.display(cmd);
  const set = Number(safe.env.get('RESTORE_ROLLBACK_TIMEOUT'));
  const timeoutMs = Number.isInteger(set) && set > 0 ? set * 1000 : ROLLBACK_STEP_MS;
  if (!oneOff) return { ...cmd, timeoutMs, manual };
  const name = `compose-tasks-rollback-${oneOff}`.replace(/[^A-Za-z0-9_.-]/g, '-');
  const i = cmd.argv.indexOf('run');
  const argv = i < 0 ? cmd.argv : [...cmd.argv.slice(0, i + 1), '--name', name, ...cmd.argv.slice(i + 1)];
  return { ...cmd, argv, timeoutMs, container: name, manual };
}

export const restoreTasks: AnyTask[] = [restore];
