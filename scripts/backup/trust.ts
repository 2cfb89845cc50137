// What prune may trust before it deletes anything: which backups are good (verified), and whether the clock is right.
//
// Good, at prune time, means cheap to tell for many backups: the verification record (backup/.verified.json,
// written after a full check by backup, verify and download) names the archive with the size it had then, and the
// file still has that size. An empty file, a truncated one or a copy whose size differs is not good. An archive
// with no record (copied by hand, an old backup.sh archive, a download by restore) is checked in full once, and
// recorded when it passes; a record from before sizes were recorded counts when the manifest still reads.
import type { TaskContext } from '../core/define.ts';
import { backupSchedule, PRUNE_GAP_PERIODS } from '../tasks/cron.ts';
import { readVerified, recordVerified, type LocalBackup } from './store.ts';
import type { RemoteObject, S3Settings } from '../tools/s3.ts';

/** Whether each local archive counts as a good backup; the ones that do not are named in a warning. */
export async function judgeLocal(
  ctx: Pick<TaskContext, 'log' | 'signal' | 'global'>,
  dir: string,
  locals: readonly LocalBackup[],
): Promise<Map<string, boolean>> {
  const verified = readVerified(dir);
  const out = new Map<string, boolean>();
  const archive = await import('./archive.ts');
  for (const b of locals) {
    const rec = verified[b.name];
    let why: string | undefined;
    if (b.size === 0) why = 'the file is empty';
    else if (rec?.size !== undefined) {
      if (rec.size !== b.size) why = `it has ${b.size} bytes, ${rec.size} when it was checked`;
    } else {
      try {
        if (rec) await archive.readManifest(b.file);
        else {
          ctx.log.info(`local: ${b.name} was never checked here: checking it in full once`);
          await archive.checkArchive(b.file, { signal: ctx.signal });
        }
        if (!ctx.global.dryRun)
          recordVerified(dir, b.name, rec?.restoreTest ?? false, { size: b.size, ...(rec ? { at: new Date(rec.at) } : {}) });
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        why = (err as Error).message;
      }
    }
    out.set(b.name, !why);
    if (why) ctx.log.warn(`local: ${b.name} does not count as a good backup: ${why}`);
  }
  return out;
}

/** Remote objects are uploaded only after the check, and the upload is checked: good unless empty or not the size checked here. */
export function judgeRemote(
  log: Pick<TaskContext['log'], 'warn'>,
  dir: string,
  remote: ReadonlyArray<Pick<RemoteObject, 'name' | 'size'>>,
): Map<string, boolean> {
  const verified = readVerified(dir);
  const out = new Map<string, boolean>();
  for (const r of remote) {
    const size = verified[r.name]?.size;
    const why =
      r.size === 0 ? 'the object is empty' : size !== undefined && size !== r.size ? `it has ${r.size} bytes, ${size} here` : undefined;
    out.set(r.name, !why);
    if (why) log.warn(`remote: ${r.name} does not count as a good backup: ${why}`);
  }
  return out;
}

/** Prune deletes nothing past this gap since the newest earlier good backup: PRUNE_GAP_PERIODS periods of BACKUP_CRON. */
export function maxGapMs(get: (k: string) => string | undefined): number {
  return PRUNE_GAP_PERIODS * backupSchedule(get).periodMs;
}

/** Beyond this difference between the local clock and the S3 server's, nothing is pruned. */
export const MAX_SKEW_MS = 5 * 60_000;

/** The S3 endpoint as aws reaches it (S3_ENDPOINT, else AWS's regional endpoint), with the bucket path-style. */
export function bucketUrl(s: S3Settings): string {
  const base = (s.endpoint ?? `https://s3.${s.region || 'us-east-1'}.amazonaws.com`).replace(/\/+$/, '');
  return `${base}/${encodeURIComponent(s.bucket)}`;
}

/**
 * The difference between the local clock and the S3 server's (positive: the local clock is ahead), from the `Date`
 * header of an unauthenticated HEAD of the bucket: S3, R2, MinIO and s3rver answer any request with one, a refusal
 * (403) included. The local time is taken halfway through the request. Undefined, with the reason, when no answer.
 */
export async function clockSkew(
  s: S3Settings,
  o: { timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<{ skewMs: number; server: Date } | { error: string }> {
  const f = o.fetch ?? fetch;
  const t0 = Date.now();
  try {
    const res = await f(bucketUrl(s), { method: 'HEAD', redirect: 'manual', signal: AbortSignal.timeout(o.timeoutMs ?? 10_000) });
    const t1 = Date.now();
    await res.body?.cancel().catch(() => undefined);
    const header = res.headers.get('date');
    const server = header ? new Date(header) : undefined;
    if (!server || Number.isNaN(server.getTime())) return { error: `${bucketUrl(s)} answered without a Date header` };
    // The header has whole seconds: up to a second of difference is only that.
    const local = (t0 + t1) / 2;
    const skew = local - server.getTime();
    return { skewMs: Math.abs(skew) < 1000 ? 0 : skew, server };
  } catch (err) {
    const e = err as Error & { cause?: Error };
    return { error: `${bucketUrl(s)}: ${e.cause?.message ?? e.message}` };
  }
}

/** Why nothing may be pruned because the local clock and the S3 server's disagree by more than MAX_SKEW_MS; undefined when they agree. */
export async function skewWarning(log: Pick<TaskContext['log'], 'warn'>, s: S3Settings): Promise<string | undefined> {
  const r = await clockSkew(s);
  if ('error' in r) {
    log.warn(`cannot read the S3 server's clock (${r.error}): the local clock is not checked against it`);
    return undefined;
  }
  if (Math.abs(r.skewMs) <= MAX_SKEW_MS) return undefined;
  const mins = Math.round(Math.abs(r.skewMs) / 60_000);
  return (
    `the local clock is ${mins} minutes ${r.skewMs > 0 ? 'ahead of' : 'behind'} the S3 server's (${r.server.toISOString()}): ` +
    'nothing is deleted; set the clock right (timedatectl set-ntp true)'
  );
}
