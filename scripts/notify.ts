// Reports a backup's outcome: a JSON POST to NOTIFY_URL and healthchecks.io-style pings (/start, success, /fail). Never fails the backup.
import type { Logger } from './log.ts';

export interface NotifySettings {
  notifyUrl?: string;
  notifyOnSuccess: boolean;
  healthcheckUrl?: string;
  timeoutMs?: number;
  dryRun?: boolean;
}

export interface BackupReport {
  status: 'success' | 'failure';
  task: string;
  project: string;
  appEnv: string;
  host: string;
  name?: string;
  size?: number;
  durationMs: number;
  uploaded?: boolean;
  error?: string;
  exitCode?: number;
  /** Done, but something needs a person (prune held back: the clock or a long gap); sent like a failure. */
  warnings?: string[];
}

export function notifySettings(get: (k: string) => string | undefined, dryRun: boolean): NotifySettings {
  return {
    notifyUrl: get('NOTIFY_URL'),
    notifyOnSuccess: /^(1|true|yes|on)$/i.test(get('NOTIFY_ON_SUCCESS') ?? ''),
    healthcheckUrl: get('HEALTHCHECK_URL'),
    dryRun,
  };
}

/** healthchecks.io convention: <url>/start, <url> on success, <url>/fail on failure. */
export function pingUrl(base: string, kind: 'start' | 'success' | 'fail'): string {
  const b = base.replace(/\/+$/, '');
  return kind === 'success' ? b : `${b}/${kind}`;
}

async function send(log: Logger, s: NotifySettings, url: string, body?: string): Promise<void> {
  const shown = log.mask(url);
  if (s.dryRun) {
    log.info(`[dry-run] would ${body ? 'POST to' : 'ping'} ${shown}`);
    return;
  }
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ?? '',
      signal: AbortSignal.timeout(s.timeoutMs ?? 10_000),
    });
    if (!res.ok) log.warn(`notification to ${shown} answered HTTP ${res.status}`);
    await res.body?.cancel().catch(() => undefined);
  } catch (err) {
    const e = err as Error & { cause?: Error };
    log.warn(`notification to ${shown} failed: ${e.cause?.message ?? e.message}`);
  }
}

export async function pingStart(log: Logger, s: NotifySettings): Promise<void> {
  if (s.healthcheckUrl) await send(log, s, pingUrl(s.healthcheckUrl, 'start'));
}

/** Sends the outcome: the JSON report on failure (and on success when asked), and the success/fail ping. */
export async function report(log: Logger, s: NotifySettings, r: BackupReport): Promise<void> {
  const jobs: Array<Promise<void>> = [];
  if (s.notifyUrl && (r.status === 'failure' || r.warnings?.length || s.notifyOnSuccess))
    jobs.push(send(log, s, s.notifyUrl, JSON.stringify(r)));
  if (s.healthcheckUrl)
    jobs.push(
      send(log, s, pingUrl(s.healthcheckUrl, r.status === 'success' ? 'success' : 'fail'), r.error ? log.mask(r.error) : undefined),
    );
  await Promise.all(jobs);
}
