// What a killed run leaves behind (kill -9, the OOM killer, a closed SSH session, a reboot), found and removed by the
// next run that takes the change lock: holding it proves no other backup, restore or import of this project is alive.
import fs from 'node:fs';
import path from 'node:path';
import type { TaskContext } from '../core/define.ts';
import { describeUnfinished, isAlive, readUnfinished } from '../core/journal.ts';
import { refused } from '../core/errors.ts';

/** A file or folder in the backup folder that only a running task writes, with the pid in its name if it has one. */
const FILE_PATTERNS: Array<{ re: RegExp; what: string }> = [
  { re: /^\.tmp-/, what: 'a backup being written' },
  { re: /\.tar\.gz\.tmp$/, what: 'a partial archive' },
  { re: /^\.restore-.*-(\d+)$/, what: 'a restore being unpacked' },
  { re: /\.download-(\d+)(\.tmp)?$/, what: 'a partial download' },
];

/** Candidates (filtered by leftoverDatabases): a restore's `<db>_restore_<stamp>`, a db-import's `<db>_import_<pid>`. */
export const SIDE_DATABASE_SQL =
  "SELECT datname FROM pg_catalog.pg_database WHERE datname ~ '_restore_[0-9]{14}(_[0-9]+)?$' OR datname ~ '_import_[0-9]+$' ORDER BY 1";

/** This process counts as alive: a name it is writing is never a leftover. */
const alive = (pid: number): boolean => pid === process.pid || isAlive(pid);

/** Leftovers in the backup folder: names, and what each was. A name with the pid of a live process is not one. */
export function leftoverFiles(dir: string): Array<{ name: string; what: string }> {
  if (!fs.existsSync(dir)) return [];
  const out: Array<{ name: string; what: string }> = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const hit = FILE_PATTERNS.find((p) => p.re.test(name));
    if (!hit) continue;
    const pid = Number(hit.re.exec(name)?.[1]);
    if (pid && alive(pid)) continue;
    out.push({ name, what: hit.what });
  }
  return out;
}

/**
 * Side databases of this project's database `db` left by a killed restore or db-import. Only `db`'s own: a PostgreSQL
 * server shared with other projects has their restores running too. A name cut to 63 bytes matches by its prefix; a
 * db-import's carries its pid, and a live one is skipped.
 */
export function leftoverDatabases(names: string[], db: string): string[] {
  return names.filter((n) => {
    const m = /^(.*)_(?:restore_\d{14}(?:_\d+)?|import_(\d+))$/.exec(n);
    if (!m) return false;
    const base = m[1]!;
    if (base !== db && !(n.length === 63 && db.startsWith(base))) return false;
    return !(m[2] && alive(Number(m[2])));
  });
}

/**
 * Removes every leftover of a dead run: files in the backup folder, then side databases (when the database server
 * answers; it may be down, e.g. a backup of the folders only). One line each. Call it holding the change lock.
 */
export async function sweepLeftovers(ctx: TaskContext, dir: string): Promise<void> {
  for (const f of leftoverFiles(dir)) {
    fs.rmSync(path.join(dir, f.name), { recursive: true, force: true });
    ctx.log.info(`removed ${f.name}, left by an interrupted run (${f.what})`);
  }
  if (!ctx.env.get('DATABASE_URL') && !ctx.env.get('POSTGRES_DB')) return;
  const pg = await import('../tools/postgres.ts');
  const t = pg.pgTarget(ctx);
  let names: string[];
  try {
    names = (await pg.psqlQuery(ctx, t, SIDE_DATABASE_SQL, { database: 'postgres', probe: true })).split('\n').filter(Boolean);
  } catch {
    return; // the server is not running: nothing to sweep there now
  }
  for (const db of leftoverDatabases(names, t.database)) {
    try {
      await pg.dropDatabase(ctx, t, db, { force: true });
      ctx.log.info(`dropped database ${db}, left by an interrupted restore or import`);
    } catch (err) {
      ctx.log.warn(`could not drop ${db}, left by an interrupted run: ${(err as Error).message.split('\n')[0]}`);
    }
  }
}

/**
 * Takes the change lock (scripts/core/lock.ts) and, the first time this invocation takes it, deals with what killed runs
 * left: a change that was interrupted (its journal) is recovered when the task is `recover` or has --yes, else named
 * and refused (a killed backup is recovered in any case: it only left temp files); then leftovers are removed. Every
 * task that changes a database or the backup folder calls this first.
 */
export async function takeChangeLock(ctx: TaskContext, what: string): Promise<void> {
  const { lockChanges } = await import('../core/lock.ts');
  if (!(await lockChanges(ctx, what))) return;
  const { backupDir } = await import('./store.ts');
  const dir = backupDir(ctx);
  const unfinished = readUnfinished(dir);
  // A killed backup made nothing that was in use (only temp files, listed in its journal): recovered at once, never refused.
  const blocking = unfinished.filter((u) => u.op !== 'backup');
  if (blocking.length && what !== 'recover' && !ctx.global.yes) {
    const more = blocking.length > 1 ? ` (and ${blocking.length - 1} more)` : '';
    throw refused(
      `${describeUnfinished(blocking[0]!)}${more}: ${what} refused until it is recovered`,
      `run tasks recover (or pass --yes to recover it first)`,
    );
  }
  if (unfinished.length) {
    const { recoverUnfinished } = await import('./recover.ts');
    for (const u of unfinished) await recoverUnfinished(ctx, u);
  }
  await sweepLeftovers(ctx, dir);
}
