// kill -9 of `tasks backup` at every step boundary (COMPOSE_TASKS_STOP_AFTER_STEP: the plan's interpreter SIGKILLs its
// own process right after the named step), URL mode with a real PostgreSQL, a database and a host folder part, the
// backup run as its own process. After each kill: the journal names the step and lists the temp files it may have left;
// the next `tasks backup` is not refused (exit 0), recovers that journal and removes them; the lock is free; the archive
// made before is untouched; every archive in backup/ passes `tasks verify`.
import { afterAll, describe, expect, inject, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BACKUP_STEPS } from '../../scripts/backup/backup.ts';
import { journalDir, type JournalRecord } from '../../scripts/core/journal.ts';
import { killHarness } from '../harness/kill.ts';
import type { TestDatabase } from '../harness/pg.ts';
import { smallLiveDatabase, urlModeRoot } from '../harness/url-project.ts';

const pg = inject('pg');
const PROJECT = 'killbk';
const cleanup: string[] = [];
const tmp = (prefix: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanup.push(d);
  return d;
};

// A database and an `addons` host folder, no containers; the backup runs as its own process.
const h = killHarness(PROJECT, tmp('ct-killbkchild-'));
/** `tasks <argv>` in this process (the next command after a kill). */
const run = h.run;
/** `tasks backup` as its own process, killed by its interpreter after `step`: its pid, signal and stderr. */
const backupKilledAfter = (root: string, db: TestDatabase, step: string) => h.killedAfter(root, db, ['backup'], step);

const sha256 = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const archives = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.tar.gz'));
/** What only a running backup writes: the staging folder, the temp archive, a member being compressed. */
const temps = (dir: string) => fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-') || f.endsWith('.tmp') || f.endsWith('.gz-member'));

/** Whether another process can take the change lock now (the flock holder of a dead run is gone). */
async function lockIsFree(dir: string): Promise<boolean> {
  for (let i = 0; i < 40; i++) {
    if (spawnSync('flock', ['-n', path.join(dir, '.lock'), 'true']).status === 0) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

afterAll(() => {
  for (const d of cleanup) fs.rmSync(d, { recursive: true, force: true });
});

describe('backup killed at each step boundary (real PostgreSQL, a real process killed by its interpreter)', () => {
  it('the steps are the ones the dry run prints', () => {
    expect([...BACKUP_STEPS]).toEqual(['check', 'dump parts', 'write archive', 'verify', 'publish', 'upload', 'prune']);
  });

  for (const [i, step] of BACKUP_STEPS.entries()) {
    const published = i >= BACKUP_STEPS.indexOf('publish');
    it(`after '${step}': the next backup exits 0 and leaves no temp file; the lock is free; every archive verifies`, async () => {
      const { db } = await smallLiveDatabase(pg, 'kbk');
      const root = urlModeRoot(tmp('ct-killbk-'));
      const dir = path.join(root, 'backup');
      const first = await run(root, db, ['backup']);
      expect(first.code, first.stderr).toBe(0);
      const [earlier] = archives(dir);
      const earlierSum = sha256(path.join(dir, earlier!));
      await new Promise((r) => setTimeout(r, 1100)); // the killed run gets a new name

      const killed = await backupKilledAfter(root, db, step);
      expect(killed.signal, killed.stderr).toBe('SIGKILL');
      // The journal: one record per step that started, the last one this step; its temps cover what is left.
      const journal = path.join(journalDir(dir), `backup-${killed.pid}.jsonl`);
      const records = fs
        .readFileSync(journal, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as JournalRecord);
      expect(records.map((r) => r.step)).toEqual(BACKUP_STEPS.slice(0, i + 1));
      const last = records[records.length - 1]!;
      expect(last.committed).toBe(i > BACKUP_STEPS.indexOf('publish'));
      const listed = (last.facts as { temps: string[] }).temps;
      expect(listed).toEqual(
        published && step !== 'publish' ? [] : [expect.stringMatching(/^\.tmp-/), expect.stringMatching(/\.tar\.gz\.tmp$/)],
      );
      for (const f of temps(dir)) expect(listed, f).toContain(f);
      // What the dead run left: its staging folder from 'dump parts' on, the temp archive from 'write archive' on.
      const made = i >= BACKUP_STEPS.indexOf('write archive') ? 2 : i >= BACKUP_STEPS.indexOf('dump parts') ? 1 : 0;
      expect(temps(dir), killed.stderr).toHaveLength(published ? 0 : made);
      expect(archives(dir)).toHaveLength(published ? 2 : 1);
      expect(await lockIsFree(dir)).toBe(true);

      await new Promise((r) => setTimeout(r, 1100));
      const next = await run(root, db, ['backup']);
      expect(next.code, next.stderr).toBe(0);
      if (i >= BACKUP_STEPS.indexOf('dump parts') && !published)
        expect(next.stderr).toMatch(/removed \.tmp-killbk_backup_.*, left by an interrupted run \(a backup being written\)/);
      // The dead run's journal is recovered by the next change (never refused: a backup made nothing that was in use).
      expect(next.stderr).toContain(`backup was interrupted at '${step}'`);
      expect(fs.existsSync(journal)).toBe(false);
      expect(temps(dir)).toEqual([]);
      expect(await lockIsFree(dir)).toBe(true);
      expect(sha256(path.join(dir, earlier!))).toBe(earlierSum);
      const all = archives(dir);
      expect(all).toHaveLength(published ? 3 : 2);
      for (const a of all) {
        const v = await run(root, db, ['verify', a.replace(/\.tar\.gz$/, '')]);
        expect(v.code, `${a}: ${v.stderr}`).toBe(0);
      }
    });
  }
});
