// Operator helpers (schedules, completion words, PATH lookup).
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { allowedAgeMs, cronPeriodMs, findOnPath, formatAge } from '../../scripts/tasks/doctor.ts';
import { localBackups } from '../../scripts/backup/store.ts';
import { completionWords } from '../../scripts/core/completion.ts';
import { backupName } from '../../scripts/backup/manifest.ts';
import { tasks } from '../../tasks.ts';

const H = 3600_000;
const D = 24 * H;

describe('cronPeriodMs: the longest gap between runs of a schedule', () => {
  it.each([
    ['0 2 */5 * *', 5 * D],
    ['0 2 * * *', D],
    ['30 */6 * * *', 6 * H],
    ['0 3 * * 0', 7 * D],
    ['0 4 1 * *', 31 * D],
    ['*/15 * * * *', 15 * 60_000],
    ['0 * * * *', H],
  ])('%s → %d ms', (expr, ms) => expect(cronPeriodMs(expr)).toBe(ms));
  it('is undefined for something that is not a schedule, and for @reboot', () => {
    expect(cronPeriodMs('every day')).toBeUndefined();
    expect(cronPeriodMs('@reboot')).toBeUndefined();
  });
  it.each([
    ['@hourly', H],
    ['@daily', D],
    ['@weekly', 7 * D],
    ['@monthly', 31 * D],
  ])('%s → %d ms', (expr, ms) => expect(cronPeriodMs(expr)).toBe(ms));
  it('allows a quarter of a period and an hour of slack', () => expect(allowedAgeMs(D)).toBe(31 * H));
});

describe('small helpers', () => {
  it('formatAge says days and hours for long ages', () => {
    expect(formatAge(10 * D)).toBe('10.0 days');
    expect(formatAge(5 * H)).toBe('5.0 hours');
    expect(formatAge(90_000)).toBe('1 min 30 s');
  });
  it('findOnPath finds executables only', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'path-'));
    fs.writeFileSync(path.join(dir, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'data'), 'x', { mode: 0o644 });
    expect(findOnPath('tool', `/nonexistent:${dir}`)).toBe(path.join(dir, 'tool'));
    expect(findOnPath('data', dir)).toBeUndefined();
    expect(findOnPath('tool', '')).toBeUndefined();
    fs.rmSync(dir, { recursive: true });
  });
  it('localBackups orders by the time in the name, not by mtime, and ignores other files', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backups-'));
    const older = backupName('odoo', new Date('2026-01-01T00:00:00Z'));
    const newer = backupName('odoo', new Date('2026-02-01T00:00:00Z'));
    fs.writeFileSync(path.join(dir, `${newer}.tar.gz`), 'nn');
    fs.writeFileSync(path.join(dir, `${older}.tar.gz`), 'o'); // written last: newest mtime
    fs.writeFileSync(path.join(dir, 'notes.tar.gz'), 'x');
    expect(localBackups(dir).map((b) => [b.name, b.size])).toEqual([
      [newer, 2],
      [older, 1],
    ]);
    fs.rmSync(dir, { recursive: true });
  });
  it("completionWords lists tasks and aliases, hides hidden ones, and gives a task's flags", () => {
    const words = completionWords(tasks).trim().split('\n');
    expect(words).toContain('status');
    expect(words).toContain('ps');
    expect(words).toContain('doctor');
    expect(completionWords(tasks, 'down').trim().split('\n')).toEqual(['--volumes', '--dry-run', '--yes', '--env', '--quiet', '--help']);
    expect(completionWords(tasks, 'no-such-task')).toBe('');
  });
});
