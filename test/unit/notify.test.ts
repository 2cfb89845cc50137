// What NOTIFY_URL is sent, told by its host or NOTIFY_FORMAT; when doctor / setup / cron-install say nobody would hear of a failure;
// which parts of the notification settings are never printed.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import {
  detectFormat,
  notifyFormat,
  notifyGap,
  notifySettings,
  summary,
  webhookBody,
  type BackupReport,
} from '../../scripts/core/notify.ts';
import { createLogger, secretsFromEnv } from '../../scripts/core/log.ts';
import { parseTemplate, renderEnvFromTemplate } from '../../scripts/core/env.ts';

const failure: BackupReport = {
  status: 'failure',
  task: 'backup',
  project: 'odoo',
  appEnv: 'production',
  host: 'web1',
  name: 'odoo_backup_2026-01-02_02-00-00',
  durationMs: 1200,
  uploaded: false,
  error: 'pg_dump exited with code 1: connection lost',
  exitCode: 1,
};

describe('webhook formats', () => {
  it('told by the host: Slack, Discord (api/webhooks only), Teams / Outlook connectors; anything else the JSON report', () => {
    expect(detectFormat('https://hooks.slack.com/services/T000/B000/XXXX')).toBe('slack');
    expect(detectFormat('https://discord.com/api/webhooks/123/abc')).toBe('discord');
    expect(detectFormat('https://discordapp.com/api/webhooks/123/abc')).toBe('discord');
    expect(detectFormat('https://discord.com/channels/1/2')).toBe('json');
    expect(detectFormat('https://contoso.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d')).toBe('teams');
    expect(detectFormat('https://outlook.office.com/webhook/a@b/IncomingWebhook/c/d')).toBe('teams');
    expect(detectFormat('https://alerts.example.com/backup')).toBe('json');
    expect(detectFormat('not a url')).toBe('json');
  });

  it('NOTIFY_FORMAT wins over the host (a proxy in front of Slack), in any case', () => {
    expect(notifyFormat('https://relay.example.com/slack', 'Slack')).toBe('slack');
    expect(notifyFormat('https://hooks.slack.com/services/x', 'json')).toBe('json');
    expect(notifyFormat('https://hooks.slack.com/services/x', undefined)).toBe('slack');
  });

  it('bodies: json is the report itself; slack and teams {text}; discord {content}, one line for people', () => {
    expect(JSON.parse(webhookBody('json', failure))).toEqual(failure);
    const line = 'backup of odoo (production) on web1 FAILED: pg_dump exited with code 1: connection lost (exit 1)';
    expect(JSON.parse(webhookBody('slack', failure))).toEqual({ text: line });
    expect(JSON.parse(webhookBody('teams', failure))).toEqual({ text: line });
    expect(JSON.parse(webhookBody('discord', failure))).toEqual({ content: line });
    expect(summary({ ...failure, status: 'success', error: undefined, exitCode: undefined, size: 3 * 1048576, uploaded: true })).toBe(
      'backup of odoo (production) on web1 done: odoo_backup_2026-01-02_02-00-00, 3.0 MB in 1.2 s, uploaded',
    );
  });

  it('e-mail sender: NOTIFY_EMAIL_FROM, else the SMTP user when it is an address', () => {
    const get = (env: Record<string, string>) => (k: string) => env[k];
    expect(notifySettings(get({ NOTIFY_SMTP_URL: 'smtp://me%40example.com:pw@mail:587' }), false).smtp?.from).toBe('me@example.com');
    expect(notifySettings(get({ NOTIFY_SMTP_URL: 'smtp://me:pw@mail:587', NOTIFY_EMAIL_FROM: 'b@x.org' }), false).smtp?.from).toBe(
      'b@x.org',
    );
  });
});

describe('nobody hears about a failure', () => {
  const gap = (env: Record<string, string>, appEnv = 'production') => notifyGap((k) => env[k] || undefined, appEnv);

  it('in production with no NOTIFY_URL, NOTIFY_SMTP_URL or HEALTHCHECK_URL: a warning naming the keys to set', () => {
    expect(gap({})?.message).toMatch(/NOTIFY_URL, NOTIFY_SMTP_URL and HEALTHCHECK_URL are empty/);
    expect(gap({})?.fix).toMatch(/set NOTIFY_URL .* or HEALTHCHECK_URL in .env/);
    expect(gap({}, 'development')).toBeUndefined();
    expect(gap({ NOTIFY_URL: 'https://hooks.slack.com/services/x' })).toBeUndefined();
    expect(gap({ HEALTHCHECK_URL: 'https://hc-ping.com/uuid' })).toBeUndefined();
  });

  it('an SMTP URL without NOTIFY_EMAIL_TO is a gap anywhere', () => {
    expect(gap({ NOTIFY_SMTP_URL: 'smtp://u:p@h' }, 'development')?.fix).toBe('set NOTIFY_EMAIL_TO in .env');
    expect(gap({ NOTIFY_SMTP_URL: 'smtp://u:p@h', NOTIFY_EMAIL_TO: 'ops@example.com' })).toBeUndefined();
  });
});

describe('secrets of the notification settings', () => {
  const env = {
    NOTIFY_URL: 'https://hooks.slack.com/services/T0AAAA/B0BBBB/xoxbSecretToken123',
    HEALTHCHECK_URL: 'https://hc-ping.com/5f2c0000-1111-2222-3333-444455556666',
    NOTIFY_SMTP_URL: 'smtps://alerts%40example.com:p%40ss%2Fw0rd@mail.example.com:465',
    DATABASE_URL: 'postgres://app:dbpw1234@db:5432/odoo',
  };

  it('secretsFromEnv: the path of webhook and ping URLs, the SMTP password as written and decoded', () => {
    const s = secretsFromEnv(env);
    expect(s).toContain('/services/T0AAAA/B0BBBB/xoxbSecretToken123');
    expect(s).toContain('/5f2c0000-1111-2222-3333-444455556666');
    expect(s).toContain('p%40ss%2Fw0rd');
    expect(s).toContain('p@ss/w0rd');
    expect(s).not.toContain('/odoo');
  });

  it('every printed line has them masked, hosts still shown', () => {
    let out = '';
    const log = createLogger({ sink: { write: (t: string) => (out += t) }, secrets: secretsFromEnv(env) });
    log.warn(`notification to ${env.NOTIFY_URL} failed`);
    log.warn(`ping ${env.HEALTHCHECK_URL}/fail failed`);
    log.warn(`notification e-mail through ${env.NOTIFY_SMTP_URL} failed: auth p@ss/w0rd rejected`);
    expect(out).toContain('https://hooks.slack.com***');
    expect(out).toContain('https://hc-ping.com***/fail');
    expect(out).toContain('smtps://alerts%40example.com:***@mail.example.com:465');
    for (const secret of ['xoxbSecretToken123', '5f2c0000', 'p%40ss', 'p@ss/w0rd']) expect(out).not.toContain(secret);
  });

  it('.env.template: NOTIFY_SMTP_URL is a @url secret that is optional (not required, never generated by env-init)', () => {
    const text = fs.readFileSync(path.resolve(import.meta.dirname, '../../.env.template'), 'utf8');
    const keys = new Map(parseTemplate(text).map((k) => [k.key, k]));
    expect(keys.get('NOTIFY_SMTP_URL')).toMatchObject({ secret: true, required: false, type: 'url' });
    expect(keys.get('NOTIFY_FORMAT')?.enumValues).toEqual(['json', 'slack', 'discord', 'teams']);
    for (const k of ['NOTIFY_EMAIL_TO', 'NOTIFY_EMAIL_FROM', 'NOTIFY_URL', 'HEALTHCHECK_URL']) expect(keys.has(k)).toBe(true);
    expect(renderEnvFromTemplate(text)).toMatch(/^NOTIFY_SMTP_URL=$/m);
    expect(keys.get('POSTGRES_PASSWORD')).toMatchObject({ secret: true, required: true });
  });
});
