import { describe, expect, it } from 'vitest';
import { futureDated, planPrune, type BackupEntry } from '../../scripts/backup/retention.ts';
import { backupName } from '../../scripts/backup/manifest.ts';

const DAY = 86_400_000;
const now = new Date('2026-06-15T12:00:00Z');
/** A good backup `days` days before now (by the time in its name). */
const b = (days: number, good = true): BackupEntry => {
  const time = new Date(now.getTime() - days * DAY);
  return { name: backupName('odoo', time), time, good };
};
const names = (xs: { name: string }[]) => xs.map((x) => x.name).sort();

describe('planPrune', () => {
  it('deletes backups older than the retention days and keeps the younger ones', () => {
    const all = [b(1), b(10), b(29), b(31), b(45), b(90)];
    const plan = planPrune(all, { now, retentionDays: 30, keepMin: 2 });
    expect(names(plan.delete)).toEqual(names([b(31), b(45), b(90)]));
    expect(names(plan.keep)).toEqual(names([b(1), b(10), b(29)]));
  });

  it('never deletes the newest keepMin good backups, however old', () => {
    const all = [b(100), b(200), b(300), b(400)];
    const plan = planPrune(all, { now, retentionDays: 30, keepMin: 3 });
    expect(names(plan.keep)).toEqual(names([b(100), b(200), b(300)]));
    expect(names(plan.delete)).toEqual(names([b(400)]));
  });

  it('with 0 retention days keeps exactly keepMin', () => {
    const all = [b(0.1), b(1), b(2), b(3), b(4)];
    const plan = planPrune(all, { now, retentionDays: 0, keepMin: 2 });
    expect(names(plan.keep)).toEqual(names([b(0.1), b(1)]));
    expect(plan.delete).toHaveLength(3);
  });

  it('never deletes everything, even with keepMin 0 and 0 days', () => {
    const plan = planPrune([b(5), b(6)], { now, retentionDays: 0, keepMin: 0 });
    expect(names(plan.keep)).toEqual(names([b(5)]));
  });

  it('failed or partial backups never count as good: the last good ones stay even when newer runs failed', () => {
    const all = [b(0.5, false), b(1, false), b(2, false), b(50), b(60), b(70), b(80)];
    const plan = planPrune(all, { now, retentionDays: 30, keepMin: 3 });
    expect(names(plan.keep)).toEqual(names([b(0.5, false), b(1, false), b(2, false), b(50), b(60), b(70)]));
    expect(names(plan.delete)).toEqual(names([b(80)]));
  });

  it('old failed backups are deleted and do not take a keepMin slot', () => {
    const plan = planPrune([b(40, false), b(45), b(50)], { now, retentionDays: 30, keepMin: 2 });
    expect(names(plan.delete)).toEqual(names([b(40, false)]));
    expect(plan.delete[0]!.reason).toMatch(/failed or incomplete/);
  });

  it('a clock run far ahead deletes nothing: the newest earlier backup is older than the allowed gap', () => {
    const later = new Date(now.getTime() + 3650 * DAY);
    const fresh: BackupEntry = { name: backupName('odoo', later), time: later, good: true };
    const plan = planPrune([b(1), b(2), b(3), b(4), fresh], {
      now: later,
      retentionDays: 30,
      keepMin: 2,
      maxGapMs: 15 * DAY,
      fresh: fresh.name,
    });
    expect(plan.delete).toEqual([]);
    expect(plan.keep).toHaveLength(5);
    expect(plan.warning).toMatch(
      /the newest earlier good backup, odoo_backup_2026-06-14_12-00-00, is 3651\.0 days old, more than 15\.0 days/,
    );
    expect(plan.warning).toMatch(/clock jumped ahead or backups stopped; nothing is deleted/);
  });

  it('after a 400-day pause the first backup deletes none of the 10 old ones; the next one prunes as usual', () => {
    const old = Array.from({ length: 10 }, (_, i) => b(400 + i * 5));
    const first: BackupEntry = { name: backupName('odoo', now), time: now, good: true };
    const p = { retentionDays: 30, keepMin: 3, maxGapMs: 15 * DAY };
    expect(planPrune([...old, first], { ...p, now, fresh: first.name }).delete).toEqual([]);
    const next = new Date(now.getTime() + 5 * DAY);
    const second: BackupEntry = { name: backupName('odoo', next), time: next, good: true };
    const plan = planPrune([...old, first, second], { ...p, now: next, fresh: second.name });
    expect(plan.warning).toBeUndefined();
    expect(names(plan.keep)).toEqual(names([second, first, old[0]!]));
    expect(plan.delete).toHaveLength(9);
  });

  it('without a fresh backup (tasks prune alone) the gap is measured from the newest good one; bad newer ones do not count', () => {
    const plan = planPrune([b(0.5, false), b(20), b(60)], { now, retentionDays: 30, keepMin: 1, maxGapMs: 15 * DAY });
    expect(plan.delete).toEqual([]);
    expect(plan.warning).toMatch(/the newest good backup, .* is 20\.0 days old/);
    expect(planPrune([b(0.5), b(20), b(60)], { now, retentionDays: 30, keepMin: 1, maxGapMs: 15 * DAY }).delete).toHaveLength(1);
  });

  it('without maxGapMs a clock set far in the future keeps only the newest keepMin (why prune passes it)', () => {
    const plan = planPrune([b(1), b(2), b(3), b(4)], { now: new Date(now.getTime() + 3650 * DAY), retentionDays: 30, keepMin: 2 });
    expect(names(plan.keep)).toEqual(names([b(1), b(2)]));
  });

  it('a backup dated a few minutes ahead is clock noise; one dated an hour ahead holds everything', () => {
    expect(planPrune([b(-2 / 1440), b(40)], { now, retentionDays: 30, keepMin: 1 }).delete).toHaveLength(1);
    const plan = planPrune([b(-1 / 24), b(40)], { now, retentionDays: 30, keepMin: 1 });
    expect(plan.delete).toEqual([]);
    expect(plan.warning).toMatch(/is dated after now/);
    expect(futureDated([b(1), b(-1 / 24), b(-2)], now).map((x) => x.name)).toEqual([b(-2).name, b(-1 / 24).name]);
  });

  it('a clock set in the past (backups dated after now) deletes nothing and says why', () => {
    const plan = planPrune([b(1), b(2), b(300)], { now: new Date(now.getTime() - 400 * DAY), retentionDays: 30, keepMin: 1 });
    expect(plan.delete).toEqual([]);
    expect(plan.warning).toMatch(/clock looks wrong/);
  });

  it('goes by the time in the name, in any input order', () => {
    const all = [b(40), b(1), b(35), b(2)];
    const plan = planPrune(all, { now, retentionDays: 30, keepMin: 1 });
    expect(names(plan.delete)).toEqual(names([b(40), b(35)]));
  });

  it('daily / weekly / monthly keep the newest backup of each recent period', () => {
    // Two backups a day for 120 days.
    const all: BackupEntry[] = [];
    for (let d = 0; d < 120; d++) all.push(b(d), b(d + 0.25)); // 12:00 and 06:00 of the same day
    const plan = planPrune(all, { now, retentionDays: 0, keepMin: 1, daily: 7, weekly: 4, monthly: 3 });
    const kept = new Set(plan.keep.map((k) => k.name));
    // The newest of each of the last 7 days.
    for (let d = 0; d < 7; d++) expect(kept.has(b(d).name)).toBe(true);
    expect(kept.has(b(1.25).name)).toBe(false);
    // 3 months: something from roughly 2 months ago is kept.
    expect(plan.keep.some((k) => /newest of month/.test(k.reason))).toBe(true);
    expect(plan.keep.length).toBeLessThanOrEqual(7 + 4 + 3);
    expect(plan.keep.length).toBeGreaterThanOrEqual(7);
    expect(plan.keep.length + plan.delete.length).toBe(all.length);
  });

  it('keeps everything younger than retention even beyond keepMin', () => {
    const plan = planPrune([b(1), b(2), b(3), b(4), b(5)], { now, retentionDays: 30, keepMin: 1 });
    expect(plan.delete).toEqual([]);
  });

  it('an empty list plans nothing', () => {
    expect(planPrune([], { now, retentionDays: 30, keepMin: 3 })).toEqual({ keep: [], delete: [] });
  });
});
