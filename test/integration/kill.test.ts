// kill -9 of the tasks process in a restore, a backup and a db-import (URL mode, a real PostgreSQL 15): midway through a
// client tool, and after every step of the restore and db-import plans (COMPOSE_TASKS_STOP_AFTER_STEP). The next command
// refuses naming the interrupted change; tasks recover (or --yes) undoes or finishes it: the live database is the old or
// the new one whole, the folder matches it, nothing is left and the lock is free.
import { afterAll, describe, expect, inject, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { killHarness } from '../harness/kill.ts';
import { isAlive } from '../../scripts/core/journal.ts';
import { adminQuery, tableFingerprint, type TestDatabase } from '../harness/pg.ts';
import { smallLiveDatabase, urlModeRoot } from '../harness/url-project.ts';

const pg = inject('pg');
const PROJECT = 'kill';
const cleanup: string[] = [];
const tmp = (prefix: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanup.push(d);
  return d;
};

const makeRoot = () => urlModeRoot(tmp('ct-kill-'));

// A database and an `addons` host folder, no containers; the child runs the same registry with that config.
const h = killHarness(PROJECT, tmp('ct-killchild-'));
/** The next command, in this process. */
const run = h.run;
/** `tasks <argv>` as its own process, killed by the interpreter itself after the step named `stopAfter`. */
const runChild = h.killedAfter;

/**
 * Starts `tasks <argv>` as its own process with a client tool (pg_restore or pg_dump) that does part of its work,
 * touches $MARK and hangs; once the mark is there, kills the tasks process with SIGKILL (and the hung tool).
 */
async function killMidway(
  root: string,
  db: TestDatabase,
  argv: string[],
  tool: 'pg_restore' | 'pg_dump',
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<{ stderr: string; code: number | null }> {
  const bin = tmp('ct-killbin-');
  const mark = path.join(bin, 'started');
  const real = path.join(pg.binDir, tool);
  const body =
    tool === 'pg_restore'
      ? `case " $* " in *" --dbname "*) "${real}" --section=pre-data "$@"; echo $$ > "$MARK"; exec sleep 120 ;; esac\nexec "${real}" "$@"`
      : `case " $* " in *" --version "*) exec "${real}" "$@" ;; esac\nhead -c 100000 /dev/urandom; echo $$ > "$MARK"; exec sleep 120`;
  fs.writeFileSync(path.join(bin, tool), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  const child = h.spawn(root, db, argv, { PATH: `${bin}:${process.env.PATH}`, MARK: mark });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdout.resume();
  // 'exit', not 'close': the hung tool, an orphan once its parent is killed, still holds the pipes.
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  for (let i = 0; i < 1200 && !fs.existsSync(mark) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  expect(fs.existsSync(mark), stderr).toBe(true);
  child.kill(signal);
  await exited;
  spawnSync('kill', ['-9', fs.readFileSync(mark, 'utf8').trim()]);
  child.stderr.destroy();
  return { stderr, code: child.exitCode };
}

// Kills at random moments: KILL_SEED=<n> replays a run (the seed is in each failure message).
const seed = Number(process.env.KILL_SEED ?? Date.now() % 1_000_000);
let x = seed;
const rand = () => {
  x = (x * 1103515245 + 12345) % 2 ** 31;
  return x / 2 ** 31;
};
const exitOf = (child: ReturnType<typeof h.spawn>) => new Promise<void>((res) => child.on('exit', () => res()));
/** The processes under `pid` (pg_restore, pg_dump, tar, bash, psql): orphans once it is killed. */
const descendants = (pid: number): number[] => {
  const kids = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => Number(l.trim()))
    .filter(Boolean);
  return kids.flatMap((k) => [k, ...descendants(k)]);
};

/** `tasks <argv>` as its own process, SIGKILLed after `delay` ms; waits for its orphaned tools to end. Returns its stderr. */
async function killAfter(root: string, db: TestDatabase, argv: string[], delay: number): Promise<string> {
  const child = h.spawn(root, db, argv);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdout.resume();
  const exited = exitOf(child);
  await new Promise((r) => setTimeout(r, delay));
  const orphans = descendants(child.pid!);
  child.kill('SIGKILL');
  await exited;
  // The next command comes later (the next cron run, an operator): the orphaned tools have ended by then.
  for (let i = 0; i < 300 && orphans.some(isAlive); i++) await new Promise((r) => setTimeout(r, 100));
  return stderr;
}

/** How long `tasks <argv>` takes here as its own process, in ms (it must succeed). */
async function spanOf(root: string, db: TestDatabase, argv: string[]): Promise<number> {
  const t0 = Date.now();
  const whole = h.spawn(root, db, argv);
  whole.stdout.resume();
  whole.stderr.resume();
  await exitOf(whole);
  expect(whole.exitCode).toBe(0);
  return Date.now() - t0;
}

const sideDatabases = async (db: string) =>
  (await adminQuery(pg, 'postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${db}\\_%' ORDER BY 1`))
    .split('\n')
    .filter(Boolean);

const victim = () => smallLiveDatabase(pg, 'kvictim');

afterAll(() => {
  for (const d of cleanup) fs.rmSync(d, { recursive: true, force: true });
});

describe('kill -9 midway, then the next command (real PostgreSQL, real processes)', () => {
  it('restore killed during pg_restore: the next backup refuses naming it; tasks recover undoes it; then backups go on', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const made = await run(root, db, ['backup']);
    expect(made.code, made.stderr).toBe(0);
    const [archive] = fs.readdirSync(path.join(root, 'backup')).filter((f) => f.endsWith('.tar.gz'));
    await new Promise((r) => setTimeout(r, 1100)); // the next backup gets a new name
    const { stderr: out } = await killMidway(root, db, ['restore', archive!, '--yes', '--no-safety-backup'], 'pg_restore');
    // What the dead run left: a half-restored side database and the unpacked archive.
    const left = await sideDatabases(db.name);
    expect(left, out).toEqual([expect.stringMatching(new RegExp(`^${db.name}_restore_\\d{14}$`))]);
    expect(fs.readdirSync(path.join(root, 'backup')).filter((f) => f.startsWith('.restore-'))).toHaveLength(1);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);

    const refused = await run(root, db, ['backup']);
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(
      new RegExp(
        `restore of ${archive!.replace('.tar.gz', '')} into ${db.name} was interrupted at 'load the database and stage the folders'`,
      ),
    );
    expect(refused.stderr).toContain('run tasks recover');
    const rec = await run(root, db, ['recover']);
    expect(rec.code, rec.stderr).toBe(0);
    expect(rec.stderr).toContain('restore undone: the previous state is back');
    expect(await sideDatabases(db.name)).toEqual([]);
    const next = await run(root, db, ['backup']);
    expect(next.code, next.stderr).toBe(0); // the lock is free
    expect(fs.readdirSync(path.join(root, 'backup')).filter((f) => f.startsWith('.'))).toEqual(['.lock', '.verified.json']);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it('backup killed during pg_dump: the next backup removes the partial staging folder; no archive from the dead run', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const { stderr: out } = await killMidway(root, db, ['backup'], 'pg_dump');
    const dir = path.join(root, 'backup');
    expect(
      fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-')),
      out,
    ).toHaveLength(1);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tar.gz'))).toEqual([]);
    await new Promise((r) => setTimeout(r, 1100));
    const next = await run(root, db, ['backup']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/removed \.tmp-kill_backup_.*, left by an interrupted run \(a backup being written\)/);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-') || f.endsWith('.tmp'))).toEqual([]);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tar.gz'))).toHaveLength(1);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it('backup killed -9 at random moments (seeded): every published archive is whole; the next one cleans up', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    fs.writeFileSync(path.join(root, 'addons', 'my_module', 'big.bin'), crypto.randomBytes(8 * 1024 * 1024));
    const span = await spanOf(root, db, ['backup']);
    for (let round = 0; round < 5; round++) {
      const delay = Math.round(200 + rand() * (span - 200));
      const why = `seed ${seed}, round ${round}, killed after ${delay} ms of ${span} ms`;
      await new Promise((r) => setTimeout(r, 1100)); // a new name
      const stderr = await killAfter(root, db, ['backup'], delay);
      const dir = path.join(root, 'backup');
      // Every archive under a final name verifies: nothing half-written is ever published.
      for (const a of fs.readdirSync(dir).filter((f) => f.endsWith('.tar.gz'))) {
        const v = await run(root, db, ['verify', a.replace('.tar.gz', '')]);
        expect(v.code, `${why}: ${a}\n${stderr}\n${v.stderr}`).toBe(0);
      }
      await new Promise((r) => setTimeout(r, 1100));
      const next = await run(root, db, ['backup']);
      expect(next.code, `${why}\n${stderr}\n--- next\n${next.stderr}`).toBe(0);
      expect(fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-') || f.endsWith('.tmp') || f === '.journal')).toEqual([]);
    }
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  }, 300_000);

  it('db-import killed while loading: the next db-import --yes undoes it first (its side database dropped) and goes through', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const file = path.join(tmp('ct-killdump-'), 'x.dump');
    spawnSync(path.join(pg.binDir, 'pg_dump'), ['--format=custom', '--dbname', db.url, '--file', file]);
    const { stderr: out } = await killMidway(root, db, ['db-import', file, '--yes'], 'pg_restore');
    const left = await sideDatabases(db.name);
    expect(left, out).toEqual([expect.stringMatching(new RegExp(`^${db.name}_import_\\d+$`))]);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    const next = await run(root, db, ['db-import', file, '--yes']);
    expect(next.code, next.stderr).toBe(0);
    // --yes: the interrupted import is undone first (its side database dropped), then this one goes through.
    expect(next.stderr).toMatch(/db-import of .*x\.dump into .* was interrupted at 'load into a side database'.*: undoing it/);
    expect(next.stderr).toContain('db-import undone: the previous state is back');
    expect(await sideDatabases(db.name)).toEqual([]);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });
});

const RESTORE_STEPS = [
  'find the backup',
  'verify',
  'confirm',
  'load the database and stage the folders',
  'check before the swap',
  'stop the app',
  'swap the database',
  'swap the folders',
  'start the app',
  'check the database',
  'safety archive',
];

describe('restore killed at every step boundary, then tasks recover (real PostgreSQL, real processes)', () => {
  /** A backup of the live state, then the live state changed: a restore either keeps "changed" or brings back "current". */
  async function prepared() {
    const { db, print: before } = await victim();
    const root = makeRoot();
    const made = await run(root, db, ['backup']);
    expect(made.code, made.stderr).toBe(0);
    const name = fs
      .readdirSync(path.join(root, 'backup'))
      .find((f) => f.endsWith('.tar.gz'))!
      .replace('.tar.gz', '');
    await adminQuery(pg, db.name, `SET ROLE ${db.user}; DELETE FROM keep WHERE id > 200; CREATE TABLE extra (x int)`);
    fs.writeFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), "{'name': 'changed'}\n");
    return { db, root, name, before, changed: await tableFingerprint(pg, db.name) };
  }
  const addons = (root: string) => fs.readFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), 'utf8');

  it('--dry-run prints the plan: the eleven steps in order', async () => {
    const { db, root, name } = await prepared();
    const r = await run(root, db, ['restore', name, '--yes', '--no-safety-backup', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    const steps = [...r.stderr.matchAll(/\[dry-run\] step (\d+)\/(\d+): (.+)/g)].map((m) => `${m[1]}/${m[2]} ${m[3]}`);
    expect(steps).toEqual(RESTORE_STEPS.map((n, i) => `${i + 1}/11 ${n}`));
  });

  for (const [i, step] of RESTORE_STEPS.entries()) {
    // Until the restored state answered its checks (the commit point) a kill is undone; after it, finished.
    const finished = i >= RESTORE_STEPS.indexOf('check the database');
    const outcome = finished ? 'finishes it (the backup in place)' : 'undoes it (the previous state)';
    it(`after '${step}': recover ${outcome}, nothing left`, async () => {
      const { db, root, name, before, changed } = await prepared();
      const child = runChild(root, db, ['restore', name, '--yes', '--no-safety-backup'], step);
      expect(child.signal ?? child.status, child.stderr).toBe(child.signal ? 'SIGKILL' : 137);
      const rec = await run(root, db, ['recover']);
      expect(rec.code, rec.stderr).toBe(0);
      // The live database is whole and the one its folder matches: the backup's, or the one before.
      expect(await tableFingerprint(pg, db.name)).toEqual(finished ? before : changed);
      expect(addons(root)).toContain(finished ? 'current' : 'changed');
      expect(await sideDatabases(db.name)).toEqual([]);
      const dir = path.join(root, 'backup');
      expect(fs.readdirSync(dir).filter((f) => f.startsWith('.restore-') || f === '.journal' || f.includes('download'))).toEqual([]);
      expect(fs.readdirSync(root).filter((f) => f.includes('.restore-'))).toEqual([]);
      const next = await run(root, db, ['backup']); // the lock is free, no journal blocks it
      expect(next.code, next.stderr).toBe(0);
    });
  }

  it('with --yes the next backup recovers the killed restore first (safety archive written), then backs up the result', async () => {
    const { db, root, name, before } = await prepared();
    const child = runChild(root, db, ['restore', name, '--yes'], 'check the database');
    expect(child.signal ?? child.status, child.stderr).toBe(child.signal ? 'SIGKILL' : 137);
    const next = await run(root, db, ['backup', '--yes']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/restore of .* was interrupted at 'check the database'.*: it had passed its commit point, finishing it/);
    expect(next.stderr).toContain('restore finished: the new state is complete');
    expect(await tableFingerprint(pg, db.name)).toEqual(before);
    expect(addons(root)).toContain('current');
    // The backup restored, the safety archive recovery wrote from the previous copies, and this backup.
    const archives = fs.readdirSync(path.join(root, 'backup')).filter((f) => f.endsWith('.tar.gz'));
    expect(archives, next.stderr).toHaveLength(3);
    const reasons = archives.map(
      (a) => JSON.parse(spawnSync('tar', ['-xzOf', path.join(root, 'backup', a), 'manifest.json'], { encoding: 'utf8' }).stdout).reason,
    );
    expect(reasons).toContain('pre-restore');
  });

  it('kill -9 at random moments of a restore with its safety archive (seeded): recover leaves the old or the new state whole', async () => {
    // How long a whole restore takes here: the kills fall anywhere in it.
    const timing = await prepared();
    const span = await spanOf(timing.root, timing.db, ['restore', timing.name, '--yes']);
    for (let round = 0; round < 5; round++) {
      const delay = Math.round(300 + rand() * (span - 300));
      const why = `seed ${seed}, round ${round}, killed after ${delay} ms of ${span} ms`;
      const { db, root, name, before, changed } = await prepared();
      const stderr = await killAfter(root, db, ['restore', name, '--yes'], delay);
      const rec = await run(root, db, ['recover']);
      const ctx = `${why}\n--- killed run\n${stderr}\n--- recover\n${rec.stderr}`;
      expect(rec.code, ctx).toBe(0);
      const now = await tableFingerprint(pg, db.name);
      const restored = JSON.stringify(now) === JSON.stringify(before);
      expect(restored || JSON.stringify(now) === JSON.stringify(changed), ctx).toBe(true);
      // The folder goes with the database: both the backup's, or both as before.
      expect(addons(root), ctx).toContain(restored ? 'current' : 'changed');
      expect(await sideDatabases(db.name), ctx).toEqual([]);
      const dir = path.join(root, 'backup');
      expect(
        fs.readdirSync(dir).filter((f) => f.startsWith('.restore-') || f.startsWith('.tmp-') || f.endsWith('.tmp') || f === '.journal'),
        ctx,
      ).toEqual([]);
      expect(
        fs.readdirSync(root).filter((f) => f.includes('.restore-')),
        ctx,
      ).toEqual([]);
      const next = await run(root, db, ['backup']);
      expect(next.code, `${ctx}\n--- next backup\n${next.stderr}`).toBe(0);
    }
  }, 300_000);

  it('power loss: the journal record of each swap is written and fsynced, then its folder, before the swap runs (strace)', async () => {
    // What survives a power cut is what was fsynced: the record that lets recover undo the swap must be, before it runs.
    const { db, root, name } = await prepared();
    const log = path.join(tmp('ct-strace-'), 'trace');
    const trace = ['-f', '-qq', '-y', '-s', '400', '-e', 'signal=none', '-e', 'trace=write,fsync,fdatasync,execve', '-o', log];
    const r = spawnSync('strace', [...trace, ...h.argv(['restore', name, '--yes', '--no-safety-backup'])], {
      cwd: root,
      env: h.env(db, { CT_ROOT: root }),
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = fs.readFileSync(log, 'utf8').split('\n');
    const journal = String.raw`\.journal/restore-\d+\.jsonl`;
    const swaps: [string, RegExp][] = [
      ['swap the database', /execve\(.*psql.*RENAME TO/],
      ['swap the folders', /execve\(.*"set -euo pipefail\\ndest=\$1 work=\$2 mode=\$3/],
    ];
    for (const [step, runs] of swaps) {
      const at = lines.findIndex((l) => runs.test(l));
      expect(at, `${step}: its command in the trace`).toBeGreaterThan(-1);
      const before = lines.slice(0, at);
      const rec = before.findLastIndex((l) => new RegExp(`write\\(\\d+<[^>]*${journal}>, .*\\\\"step\\\\":\\\\"${step}\\\\"`).test(l));
      expect(rec, `${step}: its journal record, written before it runs`).toBeGreaterThan(-1);
      const fileSync = before.findIndex((l, i) => i > rec && new RegExp(`f(data)?sync\\(\\d+<[^>]*${journal}>\\)`).test(l));
      expect(fileSync, `${step}: the journal fsynced after its record, before it runs`).toBeGreaterThan(rec);
      const dirSync = before.findIndex((l, i) => i > fileSync && /f(data)?sync\(\d+<[^>]*\/\.journal>\)/.test(l));
      expect(dirSync, `${step}: the journal's folder fsynced after that, before it runs`).toBeGreaterThan(fileSync);
    }
  });

  it('SIGHUP (a closed SSH session) during pg_restore: undone like SIGTERM, nothing to recover', async () => {
    const { db, root, name, changed } = await prepared();
    const { stderr, code } = await killMidway(root, db, ['restore', name, '--yes', '--no-safety-backup'], 'pg_restore', 'SIGHUP');
    expect(code, stderr).toBe(143);
    expect(await tableFingerprint(pg, db.name)).toEqual(changed);
    expect(addons(root)).toContain('changed');
    expect(await sideDatabases(db.name)).toEqual([]);
    expect(fs.existsSync(path.join(root, 'backup', '.journal'))).toBe(false);
    const rec = await run(root, db, ['recover']);
    expect(rec.stderr).toContain('nothing to recover');
  });
});

describe('db-import killed at every step boundary, then tasks recover', () => {
  for (const step of ['check the dump', 'confirm', 'load into a side database', 'swap the database']) {
    const finished = step === 'swap the database';
    it(`after '${step}': recover ${finished ? 'finishes it (the dump in place)' : 'undoes it (the previous database)'}`, async () => {
      const { db } = await victim();
      const root = makeRoot();
      const file = path.join(tmp('ct-killdump-'), 'x.dump');
      await adminQuery(pg, db.name, `SET ROLE ${db.user}; CREATE TABLE imported (x int); INSERT INTO imported VALUES (1)`);
      const dumped = await tableFingerprint(pg, db.name);
      spawnSync(path.join(pg.binDir, 'pg_dump'), ['--format=custom', '--dbname', db.url, '--file', file]);
      await adminQuery(pg, db.name, `SET ROLE ${db.user}; DROP TABLE imported; DELETE FROM keep WHERE id > 10`);
      const live = await tableFingerprint(pg, db.name);
      const child = runChild(root, db, ['db-import', file, '--yes'], step);
      expect(child.signal ?? child.status, child.stderr).toBe(child.signal ? 'SIGKILL' : 137);
      const rec = await run(root, db, ['recover']);
      expect(rec.code, rec.stderr).toBe(0);
      expect(rec.stderr).toContain(`db-import ${finished ? 'finished' : 'undone'}`);
      expect(await tableFingerprint(pg, db.name)).toEqual(finished ? dumped : live);
      expect(await sideDatabases(db.name)).toEqual([]);
      expect(fs.existsSync(path.join(root, 'backup', '.journal'))).toBe(false);
    });
  }
});
