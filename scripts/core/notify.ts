// Reports a backup's outcome: a POST to NOTIFY_URL (the JSON report, or the text field of a Slack / Discord / Teams incoming
// webhook), an e-mail through NOTIFY_SMTP_URL, and healthchecks.io-style pings (/start, success, /fail). Never fails the backup.
import os from 'node:os';
import { formatBytes, formatDuration, type Logger } from './log.ts';

export const NOTIFY_FORMATS = ['json', 'slack', 'discord', 'teams'] as const;
export type NotifyFormat = (typeof NOTIFY_FORMATS)[number];

export interface SmtpSettings {
  /** smtp://user:pass@host:587 (STARTTLS when offered) or smtps://…:465 */
  url: string;
  to?: string;
  from: string;
}

export interface NotifySettings {
  notifyUrl?: string;
  /** What NOTIFY_URL is sent: NOTIFY_FORMAT, else guessed from the URL's host. */
  format: NotifyFormat;
  smtp?: SmtpSettings;
  notifyOnSuccess: boolean;
  healthcheckUrl?: string;
  timeoutMs?: number;
  dryRun?: boolean;
}

/** The report, as NOTIFY_URL gets it in the json format (documented in docs/backups.md). */
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

/** The webhook flavour of a URL by its host: Slack, Discord and Teams (Microsoft 365) incoming webhooks; anything else json. */
export function detectFormat(url: string): NotifyFormat {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'json';
  }
  const host = u.hostname.toLowerCase();
  if (host === 'hooks.slack.com') return 'slack';
  if (/^((ptb|canary)\.)?discord(app)?\.com$/.test(host) && u.pathname.startsWith('/api/webhooks/')) return 'discord';
  if (host.endsWith('.webhook.office.com') || host === 'outlook.office.com') return 'teams';
  return 'json';
}

/** NOTIFY_FORMAT when valid, else the one the URL's host says. */
export function notifyFormat(url: string | undefined, explicit: string | undefined): NotifyFormat {
  const e = explicit?.trim().toLowerCase();
  if (e && (NOTIFY_FORMATS as readonly string[]).includes(e)) return e as NotifyFormat;
  return url ? detectFormat(url) : 'json';
}

export function notifySettings(get: (k: string) => string | undefined, dryRun: boolean): NotifySettings {
  const notifyUrl = get('NOTIFY_URL');
  const smtpUrl = get('NOTIFY_SMTP_URL');
  let smtp: SmtpSettings | undefined;
  if (smtpUrl) {
    let user = '';
    try {
      user = decodeURIComponent(new URL(smtpUrl).username);
    } catch {
      /* reported when sending */
    }
    const to = get('NOTIFY_EMAIL_TO');
    smtp = { url: smtpUrl, from: get('NOTIFY_EMAIL_FROM') ?? (user.includes('@') ? user : `compose-tasks@${os.hostname()}`) };
    if (to) smtp.to = to;
  }
  return {
    notifyUrl,
    format: notifyFormat(notifyUrl, get('NOTIFY_FORMAT')),
    ...(smtp ? { smtp } : {}),
    notifyOnSuccess: /^(1|true|yes|on)$/i.test(get('NOTIFY_ON_SUCCESS') ?? ''),
    healthcheckUrl: get('HEALTHCHECK_URL'),
    dryRun,
  };
}

/**
 * Why a failed backup would go unheard, for doctor, setup and cron-install: in production, no NOTIFY_URL, NOTIFY_SMTP_URL nor
 * HEALTHCHECK_URL; anywhere, an SMTP URL without a recipient. Undefined when nothing is missing.
 */
export function notifyGap(get: (k: string) => string | undefined, appEnv: string): { message: string; fix: string } | undefined {
  if (get('NOTIFY_SMTP_URL') && !get('NOTIFY_EMAIL_TO'))
    return { message: 'NOTIFY_SMTP_URL is set but NOTIFY_EMAIL_TO is not: no e-mail can be sent', fix: 'set NOTIFY_EMAIL_TO in .env' };
  if (appEnv !== 'production' || get('NOTIFY_URL') || get('NOTIFY_SMTP_URL') || get('HEALTHCHECK_URL')) return undefined;
  return {
    message: 'nobody hears about a failed backup: NOTIFY_URL, NOTIFY_SMTP_URL and HEALTHCHECK_URL are empty (only the cron log says so)',
    fix: 'set NOTIFY_URL (a webhook: Slack, Discord, Teams or JSON), NOTIFY_SMTP_URL + NOTIFY_EMAIL_TO, or HEALTHCHECK_URL in .env',
  };
}

/** What the configured channels are, for doctor's ok line. */
export function notifyChannels(s: NotifySettings): string[] {
  return [
    ...(s.notifyUrl ? [`NOTIFY_URL (${s.format})`] : []),
    ...(s.smtp ? [`e-mail to ${s.smtp.to ?? '(nobody)'}`] : []),
    ...(s.healthcheckUrl ? ['HEALTHCHECK_URL pings'] : []),
  ];
}

/** healthchecks.io convention: <url>/start, <url> on success, <url>/fail on failure. */
export function pingUrl(base: string, kind: 'start' | 'success' | 'fail'): string {
  const b = base.replace(/\/+$/, '');
  return kind === 'success' ? b : `${b}/${kind}`;
}

/** One line for people (chat message, e-mail subject and first line). */
export function summary(r: BackupReport): string {
  const where = `${r.project} (${r.appEnv}) on ${r.host}`;
  if (r.status === 'failure')
    return `${r.task} of ${where} FAILED: ${r.error ?? 'unknown error'}${r.exitCode ? ` (exit ${r.exitCode})` : ''}`;
  const size = r.size !== undefined ? `, ${formatBytes(r.size)}` : '';
  const done = `${r.task} of ${where} done: ${r.name ?? ''}${size} in ${formatDuration(r.durationMs)}${r.uploaded ? ', uploaded' : ''}`;
  return r.warnings?.length ? `${done}; NEEDS A LOOK: ${r.warnings.join('; ')}` : done;
}

/** The body NOTIFY_URL gets in each format. */
export function webhookBody(format: NotifyFormat, r: BackupReport): string {
  if (format === 'json') return JSON.stringify(r);
  const text = summary(r);
  if (format === 'discord') return JSON.stringify({ content: text.slice(0, 2000) });
  return JSON.stringify({ text });
}

/** POSTs `body` (JSON, or `text` for a ping's plain-text error) to url; a failure is a warning, never the task's result. */
async function send(log: Logger, s: NotifySettings, url: string, body?: string, type = 'application/json'): Promise<void> {
  const shown = log.mask(url);
  if (s.dryRun) {
    log.info(`[dry-run] would ${body ? 'POST to' : 'ping'} ${shown}`);
    return;
  }
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: body ? { 'content-type': type } : {},
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

async function mail(log: Logger, s: NotifySettings, smtp: SmtpSettings, r: BackupReport): Promise<void> {
  const shown = log.mask(smtp.url);
  if (!smtp.to) {
    log.warn(`NOTIFY_SMTP_URL is set but NOTIFY_EMAIL_TO is not: no e-mail sent (set NOTIFY_EMAIL_TO in .env)`);
    return;
  }
  if (s.dryRun) {
    log.info(`[dry-run] would e-mail ${smtp.to} through ${shown}`);
    return;
  }
  const timeout = s.timeoutMs ?? 10_000;
  try {
    const nodemailer = await import('nodemailer');
    const transport = nodemailer.createTransport({
      url: smtp.url,
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
    });
    const lines = Object.entries(r).map(([k, v]) => `${k}: ${v}`);
    try {
      await transport.sendMail({
        from: smtp.from,
        to: smtp.to,
        subject: `[${r.project}] ${r.task} ${r.status === 'failure' ? 'FAILED' : 'done'} on ${r.host}`,
        text: `${summary(r)}\n\n${lines.join('\n')}\n`,
      });
    } finally {
      transport.close();
    }
  } catch (err) {
    log.warn(`notification e-mail to ${smtp.to} through ${shown} failed: ${log.mask((err as Error).message)}`);
  }
}

export async function pingStart(log: Logger, s: NotifySettings): Promise<void> {
  if (s.healthcheckUrl) await send(log, s, pingUrl(s.healthcheckUrl, 'start'));
}

/** Sends the outcome: the report on failure (and on success when asked) to NOTIFY_URL and by e-mail, and the success/fail ping. */
export async function report(log: Logger, s: NotifySettings, r: BackupReport): Promise<void> {
  const jobs: Array<Promise<void>> = [];
  const tell = r.status === 'failure' || Boolean(r.warnings?.length) || s.notifyOnSuccess;
  if (s.notifyUrl && tell) jobs.push(send(log, s, s.notifyUrl, webhookBody(s.format, r)));
  if (s.smtp && tell) jobs.push(mail(log, s, s.smtp, r));
  if (s.healthcheckUrl)
    jobs.push(
      send(
        log,
        s,
        pingUrl(s.healthcheckUrl, r.status === 'success' ? 'success' : 'fail'),
        r.error ? log.mask(r.error) : undefined,
        'text/plain; charset=utf-8',
      ),
    );
  await Promise.all(jobs);
}
