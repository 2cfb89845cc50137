import { describe, expect, it } from 'vitest';
import { createLogger, formatBytes, maskSecrets, secretsFromEnv } from '../../scripts/core/log.ts';

describe('masking', () => {
  it('masks passwords inside URLs and known secret values', () => {
    expect(maskSecrets('pg_dump postgres://app:p%40ss@h/db and key=abcd1234', ['abcd1234'])).toBe(
      'pg_dump postgres://app:***@h/db and key=***',
    );
  });
  it('takes secrets from password, secret, token and key variables and URL credentials', () => {
    const s = secretsFromEnv({
      POSTGRES_PASSWORD: 'pw12345',
      AWS_SECRET_ACCESS_KEY: 'sk-abcdef',
      AWS_ACCESS_KEY_ID: 'AKIAPUBLIC',
      DATABASE_URL: 'postgres://u:urlpass@h/d',
      APP_ENV: 'production',
    });
    expect(s).toEqual(expect.arrayContaining(['pw12345', 'sk-abcdef', 'urlpass']));
    expect(s).not.toContain('production');
    expect(s).not.toContain('AKIAPUBLIC');
  });
  it('never prints a secret added later', () => {
    let out = '';
    const log = createLogger({ sink: { write: (t: string) => (out += t) } });
    log.addSecret('late-secret-value');
    log.info('connecting with late-secret-value');
    expect(out).toBe('connecting with ***\n');
  });
});

describe('log lines', () => {
  it('timestamps step lines without a terminal (cron logs) and hides commands with --quiet', () => {
    let out = '';
    const log = createLogger({ sink: { write: (t: string) => (out += t), isTTY: false }, quiet: true });
    log.step('dumping the database');
    log.emit({ kind: 'cmd', display: 'pg_dump x', dryRun: false });
    expect(out).toMatch(/^\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\] dumping the database\n$/);
  });
  it('formats sizes', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(200 * 1024 * 1024)).toBe('200.0 MB');
  });
});
