// The backup archive format: names, the manifest inside every archive, and how old backup.sh archives are recognised.
import { usage } from '../core/errors.ts';

export const MANIFEST_FORMAT = 'compose-tasks-backup';
export const MANIFEST_VERSION = 1;

/** One archive: backup/<name>.tar.gz holding manifest.json plus one file per part (flat, no folders). */
export interface ManifestPart {
  /** As declared in tasks.ts: database, filestore, addons, … */
  name: string;
  kind: 'database' | 'volume' | 'path';
  /** Member name inside the archive, e.g. database.dump, filestore.tar, addons.tar */
  file: string;
  /** pg_dump custom format, or an uncompressed tar of the part's folder ('tar.gz' only in old backup.sh archives). */
  format: 'pg_dump-custom' | 'tar' | 'tar.gz';
  size: number;
  sha256: string;
  /** For volumes: where it was read from (service and path), to restore it there. */
  service?: string;
  path?: string;
  owner?: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
  name: string;
  /** UTC, ISO 8601. */
  createdAt: string;
  appEnv: string;
  project: string;
  database: string;
  /** e.g. "15.8" */
  serverVersion?: string;
  pgDumpVersion?: string;
  /** service -> image id */
  images: Record<string, string>;
  gitCommit?: string;
  tool: { name: string; version: string };
  /** Why it was taken. */
  reason: 'manual' | 'scheduled' | 'pre-restore';
  parts: ManifestPart[];
}

const NAME_RE = /^(?<project>.+)_backup_(?<date>\d{4}-\d{2}-\d{2})_(?<time>\d{2}-\d{2}-\d{2})$/;

/** `<project>_backup_YYYY-MM-DD_HH-MM-SS`, UTC. */
export function backupName(project: string, at: Date): string {
  const iso = at.toISOString(); // 2026-11-22T05:59:01.123Z
  return `${project}_backup_${iso.slice(0, 10)}_${iso.slice(11, 19).replace(/:/g, '-')}`;
}

/** The time in a backup's name (retention goes by this, never by file mtime); undefined if the name has none. */
export function parseBackupName(fileOrName: string): { name: string; project: string; time: Date } | undefined {
  const name = fileOrName.replace(/^.*\//, '').replace(/\.tar\.gz$/, '');
  const m = NAME_RE.exec(name);
  if (!m?.groups) return undefined;
  const time = new Date(`${m.groups.date}T${m.groups.time!.replace(/-/g, ':')}Z`);
  if (Number.isNaN(time.getTime())) return undefined;
  return { name, project: m.groups.project!, time };
}

/** The old bash backup.sh layout: odoo_backup_*.tar.gz with database.dump, filestore.tar.gz, addons.tar.gz, backup.info. */
export const LEGACY_MEMBERS = ['database.dump', 'filestore.tar.gz', 'addons.tar.gz', 'backup.info'] as const;

/**
 * `--only db,addons` → those parts, in their own order ("db" means the database part). `whose` names the list in the
 * error: an unknown name is a usage error naming the parts there are.
 */
export function selectParts<P extends { name: string; kind: string }>(parts: readonly P[], only: string | undefined, whose: string): P[] {
  if (!only) return [...parts];
  const out = new Set<P>();
  for (const w of only
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const p = parts.find((x) => x.name === w) ?? (w === 'db' ? parts.find((x) => x.kind === 'database') : undefined);
    if (!p) throw usage(`--only ${w}: ${whose} has no part "${w}" (it has: ${parts.map((x) => x.name).join(', ')})`);
    out.add(p);
  }
  return parts.filter((p) => out.has(p));
}
