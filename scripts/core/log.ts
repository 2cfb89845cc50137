// Typed log events and their formatting: command echo, steps, warnings, progress; secrets masked.

export type LogEvent =
  | { kind: 'cmd'; display: string; dryRun: boolean }
  | { kind: 'step'; message: string }
  | { kind: 'info'; message: string }
  | { kind: 'warn'; message: string }
  | { kind: 'error'; message: string; hint?: string }
  | { kind: 'success'; message: string }
  | { kind: 'progress'; label: string; bytes: number; total?: number; elapsedMs: number }
  | { kind: 'output'; text: string };

export interface LogSink {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface Logger {
  emit(e: LogEvent): void;
  step(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  success(message: string): void;
  /** Add a value that must never be printed. */
  addSecret(value: string | undefined): void;
  mask(text: string): string;
  readonly isTTY: boolean;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s'"]+:)([^@\s'"]+)(@)/gi;

/** Masks known secret values and passwords inside URLs (scheme://user:password@host). */
export function maskSecrets(text: string, secrets: Iterable<string>): string {
  let out = text.replace(URL_CREDENTIALS, '$1***$3');
  const sorted = [...new Set(secrets)].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  for (const s of sorted) out = out.split(s).join('***');
  return out;
}

/** Environment keys whose values are secrets. */
export const SECRET_KEY = /(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|CREDENTIAL|ACCESS_KEY|API_KEY|_KEY$|^KEY$)/i;

/** Keys holding a webhook or ping URL: its path and query are the credential (Slack, Discord, Teams, healthchecks.io tokens). */
export const WEBHOOK_KEY = /^(NOTIFY_URL|HEALTHCHECK_URL)$|WEBHOOK/i;

/** The secret part of a webhook URL: everything after the host, as written and decoded. */
function webhookSecrets(v: string): string[] {
  const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+([/?#]\S*)$/i.exec(v.trim());
  const rest = m?.[1]?.replace(/\/+$/, '');
  if (!rest || rest.length < 4) return [];
  let decoded = rest;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    /* kept as written */
  }
  return [rest, decoded];
}

export function secretsFromEnv(env: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (!v) continue;
    if (SECRET_KEY.test(k) && !/^(AWS_ACCESS_KEY_ID)$/.test(k)) out.push(v);
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:([^@\s]+)@/i.exec(v);
    if (m?.[1]) out.push(decodeURIComponent(m[1]), m[1]);
    if (WEBHOOK_KEY.test(k)) out.push(...webhookSecrets(v));
  }
  return out;
}

type Formatters = { [K in LogEvent['kind']]: (e: Extract<LogEvent, { kind: K }>, tty: boolean) => string };

const stamp = (tty: boolean) => (tty ? '' : `[${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}] `);

const formatters: Formatters = {
  cmd: (e) => `${e.dryRun ? '[dry-run] ' : ''}$ ${e.display}\n`,
  step: (e, tty) => `${stamp(tty)}${tty ? '› ' : ''}${e.message}\n`,
  info: (e) => `${e.message}\n`,
  warn: (e, tty) => `${stamp(tty)}warning: ${e.message}\n`,
  error: (e) => `error: ${e.message}\n${e.hint ? `  ${e.hint}\n` : ''}`,
  success: (e, tty) => `${stamp(tty)}${tty ? '✔ ' : ''}${e.message}\n`,
  progress: (e, tty) => {
    const rate = e.elapsedMs > 0 ? e.bytes / (e.elapsedMs / 1000) : 0;
    const pct = e.total ? ` (${Math.min(100, Math.floor((e.bytes / e.total) * 100))}%)` : '';
    const line = `${e.label}: ${formatBytes(e.bytes)}${e.total ? ` of ${formatBytes(e.total)}` : ''}${pct}, ${formatBytes(rate)}/s`;
    return tty ? `\r\x1b[2K${line}` : `${stamp(tty)}${line}\n`;
  },
  output: (e) => e.text,
};

export function formatEvent(e: LogEvent, tty: boolean): string {
  return (formatters[e.kind] as (e: LogEvent, tty: boolean) => string)(e, tty);
}

export interface LoggerOptions {
  sink: LogSink;
  quiet?: boolean;
  secrets?: Iterable<string>;
}

export function createLogger(opts: LoggerOptions): Logger {
  const secrets = new Set<string>();
  for (const s of opts.secrets ?? []) if (s) secrets.add(s);
  const isTTY = Boolean(opts.sink.isTTY);
  let progressOpen = false;
  const mask = (t: string) => maskSecrets(t, secrets);
  const emit = (e: LogEvent) => {
    if (opts.quiet && (e.kind === 'cmd' || e.kind === 'progress')) return;
    let text = mask(formatEvent(e, isTTY));
    if (progressOpen && e.kind !== 'progress') {
      text = `\n${text}`;
      progressOpen = false;
    }
    if (e.kind === 'progress' && isTTY) progressOpen = true;
    opts.sink.write(text);
  };
  return {
    emit,
    step: (message) => emit({ kind: 'step', message }),
    info: (message) => emit({ kind: 'info', message }),
    warn: (message) => emit({ kind: 'warn', message }),
    success: (message) => emit({ kind: 'success', message }),
    addSecret: (v) => {
      if (v && v.length >= 4) secrets.add(v);
    },
    mask,
    isTTY,
  };
}
