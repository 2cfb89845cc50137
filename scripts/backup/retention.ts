// Retention as a pure function: which backups to keep and which to delete, by the time in their names.

export interface BackupEntry {
  name: string;
  /** The time in the name (never the file's mtime). */
  time: Date;
  /** A complete, checked backup. Temporary or failed files (*.tmp) are never good. */
  good: boolean;
}

export interface RetentionPolicy {
  now: Date;
  /** Delete backups older than this many days (0: age keeps nothing, keepMin still applies). */
  retentionDays: number;
  /** Never delete the newest N good backups (at least 1 is always kept). */
  keepMin: number;
  /** Also keep the newest good backup of each of the last N days / weeks / months that have one. */
  daily?: number;
  weekly?: number;
  monthly?: number;
  /**
   * Nothing is deleted when the newest good backup before this run (other than `fresh`) is older than this: the
   * clock jumped ahead, or backups stopped for that long; either way age says nothing about what to keep.
   */
  maxGapMs?: number;
  /** The backup this run just made: the gap is measured from the newest one before it. */
  fresh?: string;
  /** Set when nothing may be deleted for a reason found outside the names (the clock disagrees with the S3 server's). */
  hold?: string;
}

export interface Decision {
  name: string;
  reason: string;
}
export interface PrunePlan {
  keep: Decision[];
  delete: Decision[];
  /** Set when nothing is deleted because the clock looks wrong. */
  warning?: string;
}

const DAY = 86_400_000;
/** A backup more than this far in the future means the clock (or the names) cannot be trusted. */
export const FUTURE_TOLERANCE_MS = 5 * 60_000;

/** "400.0 days", "36.0 hours" */
const age = (ms: number) => (ms >= 2 * DAY ? `${(ms / DAY).toFixed(1)} days` : `${(ms / 3_600_000).toFixed(1)} hours`);

/** Backups dated after `now` (beyond the tolerance), newest first: the clock went back, or a name was made by hand. */
export function futureDated<T extends { time: Date }>(backups: readonly T[], now: Date): T[] {
  return backups.filter((b) => b.time.getTime() - now.getTime() > FUTURE_TOLERANCE_MS).sort((a, b) => b.time.getTime() - a.time.getTime());
}

const dayKey = (d: Date) => d.toISOString().slice(0, 10);
const monthKey = (d: Date) => d.toISOString().slice(0, 7);
function weekKey(d: Date): string {
  // ISO week: the Thursday of the week decides the year.
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const dow = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - dow);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / DAY + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

export function planPrune(backups: readonly BackupEntry[], p: RetentionPolicy): PrunePlan {
  const sorted = [...backups].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : -1));
  const good = sorted.filter((b) => b.good);
  const reasons = new Map<string, string>();
  const keep = (name: string, reason: string) => {
    if (!reasons.has(name)) reasons.set(name, reason);
  };

  const hold = (warning: string): PrunePlan => ({
    keep: sorted.map((b) => ({ name: b.name, reason: 'the clock looks wrong or backups stopped: nothing is deleted' })),
    delete: [],
    warning,
  });
  if (p.hold) return hold(p.hold);
  const future = futureDated(sorted, p.now)[0];
  if (future) return hold(`${future.name} is dated after now (${p.now.toISOString()}): the clock looks wrong, nothing is deleted`);
  const earlier = good.find((b) => b.name !== p.fresh);
  const gap = earlier ? p.now.getTime() - earlier.time.getTime() : 0;
  if (p.maxGapMs && earlier && gap > p.maxGapMs)
    return hold(
      `the newest ${p.fresh ? 'earlier ' : ''}good backup, ${earlier.name}, is ${age(gap)} old, more than ${age(p.maxGapMs)}: ` +
        'the clock jumped ahead or backups stopped; nothing is deleted (the next backup on schedule prunes as usual)',
    );

  const keepMin = Math.max(1, Math.floor(p.keepMin));
  for (const [i, b] of good.slice(0, keepMin).entries()) keep(b.name, `one of the newest ${keepMin} good backups (#${i + 1})`);

  const cutoff = p.now.getTime() - Math.max(0, p.retentionDays) * DAY;
  if (p.retentionDays > 0) for (const b of sorted) if (b.time.getTime() > cutoff) keep(b.name, `younger than ${p.retentionDays} days`);

  const periodic = (count: number | undefined, key: (d: Date) => string, label: string) => {
    if (!count || count <= 0) return;
    const seen = new Set<string>();
    for (const b of good) {
      const k = key(b.time);
      if (seen.has(k)) continue;
      if (seen.size >= count) break;
      seen.add(k);
      keep(b.name, `newest of ${label} ${k}`);
    }
  };
  periodic(p.daily, dayKey, 'day');
  periodic(p.weekly, weekKey, 'week');
  periodic(p.monthly, monthKey, 'month');

  const out: PrunePlan = { keep: [], delete: [] };
  for (const b of sorted) {
    const r = reasons.get(b.name);
    if (r) out.keep.push({ name: b.name, reason: r });
    else
      out.delete.push({
        name: b.name,
        reason: b.good ? `older than ${p.retentionDays} days` : `failed or incomplete, older than ${p.retentionDays} days`,
      });
  }
  return out;
}
