// The pure parts of `tasks restore`: names, nearest-name hints, part selection, jobs, folder layouts, and the folder swap
// scripts run for real.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { STAGE_SCRIPT, SWAP_BACK_SCRIPT, SWAP_SCRIPT, folderLayout } from '../../scripts/backup/folders.ts';
import { nearestNames, restoreJobs, restoreStamp, rollbackCommand, sideDatabaseName } from '../../scripts/backup/restore.ts';
import { bareName, newestName } from '../../scripts/backup/store.ts';
import { selectParts } from '../../scripts/backup/manifest.ts';
import type { TaskError } from '../../scripts/core/errors.ts';

describe('names', () => {
  it('stamps and side databases fit PostgreSQL identifiers', () => {
    expect(restoreStamp(new Date('2026-11-22T05:59:01.123Z'))).toBe('20261122055901');
    expect(sideDatabaseName('odoo', 'restore', '20261122055901')).toBe('odoo_restore_20261122055901');
    const long = sideDatabaseName('x'.repeat(63), 'old', '20261122055901');
    expect(long).toHaveLength(63);
    expect(long.endsWith('_old_20261122055901')).toBe(true);
  });

  it('accepts a name with or without .tar.gz, or a path', () => {
    expect(bareName('odoo_backup_2026-01-01_00-00-00.tar.gz')).toBe('odoo_backup_2026-01-01_00-00-00');
    expect(bareName('backup/odoo_backup_2026-01-01_00-00-00')).toBe('odoo_backup_2026-01-01_00-00-00');
  });

  it('nearest names: by time when the name has a date, else by edit distance', () => {
    const names = [
      'odoo_backup_2026-05-01_02-00-00',
      'odoo_backup_2026-05-06_02-00-00',
      'odoo_backup_2025-01-01_02-00-00',
      'other_backup_2026-05-05_02-00-00',
    ];
    expect(nearestNames('odoo_backup_2026-05-05_02-00-00', names, 2)).toEqual([
      'odoo_backup_2026-05-06_02-00-00',
      'odoo_backup_2026-05-01_02-00-00',
    ]);
    expect(nearestNames('odoo_bakup', ['odoo_backup', 'zzz', 'odoo_back'], 1)).toEqual(['odoo_backup']);
  });

  it('newest by the time in the name, never the file time', () => {
    expect(
      newestName(['odoo_backup_2026-01-02_00-00-00', 'odoo_backup_2026-03-01_00-00-00', 'odoo_backup_2026-02-01_00-00-00', 'junk']),
    ).toBe('odoo_backup_2026-03-01_00-00-00');
    expect(newestName(['junk'])).toBeUndefined();
  });

  it('the rollback command restores the safety backup without taking another one', () => {
    expect(rollbackCommand('odoo_backup_2026-01-01_00-00-00')).toBe(
      'tasks restore odoo_backup_2026-01-01_00-00-00 --yes --no-safety-backup',
    );
  });
});

describe('options', () => {
  const parts = [
    { name: 'database', kind: 'database' as const },
    { name: 'filestore', kind: 'volume' as const },
    { name: 'addons', kind: 'path' as const },
  ];
  it('--only picks parts (db means the database part); unknown parts are a usage error naming the ones there are', () => {
    expect([...selectParts(parts, undefined, 'this backup').map((p) => p.name)]).toEqual(['database', 'filestore', 'addons']);
    expect([...selectParts(parts, 'db,addons', 'this backup').map((p) => p.name)]).toEqual(['database', 'addons']);
    expect(() => selectParts(parts, 'files', 'this backup')).toThrow(
      /--only files: this backup has no part "files" \(it has: database, filestore, addons\)/,
    );
    try {
      selectParts(parts, 'x', 'this backup');
    } catch (e) {
      expect((e as TaskError).exitCode).toBe(2);
    }
  });

  it('--jobs defaults to min(4, cores) and must be a whole number', () => {
    expect(restoreJobs(undefined, 2)).toBe(2);
    expect(restoreJobs(undefined, 16)).toBe(4);
    expect(restoreJobs('8', 2)).toBe(8);
    expect(() => restoreJobs('0', 2)).toThrow(/--jobs 0/);
    expect(() => restoreJobs('two', 2)).toThrow(/--jobs two/);
  });
});

describe('folder layouts', () => {
  it('a tar of the folder contents (tasks backup): as is', () => {
    expect(folderLayout(['./', './odoo/', './odoo/ab/f1'], 'filestore', 'odoo')).toEqual({ strip: 0, into: '' });
  });
  it('an old archive holding the folder itself: strip one level', () => {
    expect(folderLayout(['filestore/', 'filestore/odoo/ab/f1'], 'filestore', 'odoo')).toEqual({ strip: 1, into: '' });
    expect(folderLayout(['addons/', 'addons/my_module/__init__.py'], 'addons')).toEqual({ strip: 1, into: '' });
  });
  it('a tar of one database filestore contents (hash folders at the top): into filestore/<db>', () => {
    expect(folderLayout(['./ab/f1', './cd/f2', './checklist/x'], 'filestore', 'odoo')).toEqual({ strip: 0, into: 'odoo' });
  });
});

describe('the folder swap scripts (run with bash on temp folders)', () => {
  function tree(dir: string): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out[path.relative(dir, p)] = fs.readFileSync(p, 'utf8');
      }
    };
    walk(dir);
    return out;
  }
  function setup() {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'swap-'));
    const dest = path.join(base, 'filestore');
    fs.mkdirSync(path.join(dest, 'odoo', 'ab'), { recursive: true });
    fs.writeFileSync(path.join(dest, 'odoo', 'ab', 'old'), 'old');
    fs.mkdirSync(path.join(dest, 'other'));
    fs.writeFileSync(path.join(dest, 'other', 'keep'), 'keep');
    const src = path.join(base, 'src');
    fs.mkdirSync(path.join(src, 'odoo', 'cd'), { recursive: true });
    fs.writeFileSync(path.join(src, 'odoo', 'cd', 'new'), 'new');
    const tar = path.join(base, 'part.tar');
    expect(spawnSync('tar', ['-cf', tar, '-C', src, '.']).status).toBe(0);
    return { base, dest, tar, work: path.join(base, '.restore-1') };
  }
  const bash = (script: string, args: string[], stdin?: string) =>
    spawnSync('bash', ['-c', script, 'bash', ...args], { input: stdin ? fs.readFileSync(stdin) : undefined, encoding: 'utf8' });
  /** Stage (the live folder untouched), then swap. */
  function swapIn(tar: string, dest: string, work: string, from: string, to: string, mode: 'entries' | 'whole') {
    const staged = bash(STAGE_SCRIPT, [dest, work, '0', '', from, to, '', ''], tar);
    if (staged.status !== 0) return staged;
    return bash(SWAP_SCRIPT, [dest, work, mode]);
  }

  it("staging leaves the live folder alone; entries mode swaps only the archive's entries; swap-back restores the folder exactly", () => {
    const { dest, tar, work } = setup();
    const before = tree(dest);
    const staged = bash(STAGE_SCRIPT, [dest, work, '0', '', '', 'odoo', '', ''], tar);
    expect(staged.status, staged.stderr).toBe(0);
    expect(tree(dest)).toEqual(before);
    const r = bash(SWAP_SCRIPT, [dest, work, 'entries']);
    expect(r.status, r.stderr).toBe(0);
    expect(tree(dest)).toEqual({ 'odoo/cd/new': 'new', 'other/keep': 'keep' });
    expect(bash(SWAP_BACK_SCRIPT, [dest, work]).status).toBe(0);
    expect(tree(dest)).toEqual(before);
    expect(fs.existsSync(work)).toBe(false);
  });

  it('renames the database folder for --as (from → to), and whole mode replaces the folder', () => {
    const { dest, tar, work } = setup();
    expect(swapIn(tar, dest, work, 'odoo', 'copy', 'entries').status).toBe(0);
    expect(tree(dest)).toEqual({ 'odoo/ab/old': 'old', 'copy/cd/new': 'new', 'other/keep': 'keep' });
    const w2 = `${work}-2`;
    expect(swapIn(tar, dest, w2, '', 'odoo', 'whole').status).toBe(0);
    expect(tree(dest)).toEqual({ 'odoo/cd/new': 'new' });
    expect(bash(SWAP_BACK_SCRIPT, [dest, w2]).status).toBe(0);
    expect(tree(dest)).toEqual({ 'odoo/ab/old': 'old', 'copy/cd/new': 'new', 'other/keep': 'keep' });
  });

  it('a swap killed after any of its renames is finished by running it again, or undone by the swap back (tasks recover)', () => {
    for (const mode of ['entries', 'whole'] as const) {
      for (let k = 1; k <= 3; k++) {
        for (const then of ['again', 'back'] as const) {
          const { dest, tar, work } = setup();
          const before = tree(dest);
          expect(bash(STAGE_SCRIPT, [dest, work, '0', '', '', 'odoo', '', ''], tar).status).toBe(0);
          // The k-th rename is the last thing the swap does: its shell is killed right after it (kill -9).
          const killed = bash(
            `kills=0; mv() { command mv "$@"; kills=$((kills+1)); if [ $kills -ge ${k} ]; then kill -9 $$; fi; }\n${SWAP_SCRIPT}`,
            [dest, work, mode],
          );
          const renames = 2; // whole: the folder aside, the new one in; entries: odoo aside, the new odoo in
          if (k <= renames) expect(killed.signal, `${mode} k=${k}`).toBe('SIGKILL');
          const r = bash(then === 'again' ? SWAP_SCRIPT : SWAP_BACK_SCRIPT, then === 'again' ? [dest, work, mode] : [dest, work]);
          expect(r.status, `${mode} k=${k} ${then}: ${r.stderr}`).toBe(0);
          const swapped = mode === 'whole' ? { 'odoo/cd/new': 'new' } : { 'odoo/cd/new': 'new', 'other/keep': 'keep' };
          expect(tree(dest), `${mode} k=${k} ${then}`).toEqual(then === 'again' ? swapped : before);
          if (then === 'again') {
            expect(bash(SWAP_BACK_SCRIPT, [dest, work]).status).toBe(0);
            expect(tree(dest), `${mode} k=${k} again, then back`).toEqual(before);
          }
        }
      }
    }
  });

  it('a broken tar fails the swap-in before the folder is touched', () => {
    const { dest, work, base } = setup();
    const before = tree(dest);
    const bad = path.join(base, 'bad.tar');
    fs.writeFileSync(bad, 'not a tar at all'.repeat(100));
    expect(swapIn(bad, dest, work, '', 'odoo', 'entries').status).not.toBe(0);
    expect(tree(dest)).toEqual(before);
    expect(bash(SWAP_BACK_SCRIPT, [dest, work]).status).toBe(0);
    expect(tree(dest)).toEqual(before);
  });
});
