import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { initEnvFile, loadEnv, parseTemplate, readTemplate, validateEnv, worldReadableEnvFiles } from '../../scripts/core/env.ts';
import { ExitCode } from '../../scripts/core/errors.ts';

const repo = path.resolve(import.meta.dirname, '../..');
function project(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'env-'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text, { mode: 0o600 });
  return dir;
}

describe('layered env files', () => {
  it('applies .env < .env.local < .env.<APP_ENV> < .env.<APP_ENV>.local < the real environment', () => {
    const dir = project({
      '.env': 'A=env\nB=env\nC=env\nD=env\nE=env\n',
      '.env.local': 'B=local\nC=local\nD=local\nE=local\n',
      '.env.staging': 'C=staging\nD=staging\nE=staging\n',
      '.env.staging.local': 'D=staging-local\nE=staging-local\n',
      '.env.production': 'C=production\n',
    });
    const env = loadEnv({ root: dir, processEnv: { E: 'real' }, appEnv: 'staging' });
    expect([env.get('A'), env.get('B'), env.get('C'), env.get('D'), env.get('E')]).toEqual([
      'env',
      'local',
      'staging',
      'staging-local',
      'real',
    ]);
    expect(env.files).toEqual(['.env.staging.local', '.env.staging', '.env.local', '.env']);
  });

  it('takes APP_ENV from --env, then the environment, then .env; defaults to development', () => {
    const dir = project({ '.env': 'APP_ENV=staging\n' });
    expect(loadEnv({ root: dir, processEnv: {} }).appEnv).toBe('staging');
    expect(loadEnv({ root: dir, processEnv: { APP_ENV: 'production' } }).appEnv).toBe('production');
    expect(loadEnv({ root: dir, processEnv: { APP_ENV: 'production' }, appEnv: 'development' }).appEnv).toBe('development');
    expect(loadEnv({ root: project({}), processEnv: {} }).appEnv).toBe('development');
  });

  it('refuses an unknown APP_ENV with the invalid-environment exit code', () => {
    expect(() => loadEnv({ root: project({}), processEnv: {}, appEnv: 'prod' })).toThrow(
      expect.objectContaining({ exitCode: ExitCode.invalidEnv, message: expect.stringContaining('development, staging, production') }),
    );
  });

  it('expands ${VAR} references, with the real environment winning', () => {
    const dir = project({ '.env': 'POSTGRES_USER=odoo\nHOST=db\nDATABASE_URL=postgres://${POSTGRES_USER}@${HOST}:5432/x\n' });
    expect(loadEnv({ root: dir, processEnv: {} }).get('DATABASE_URL')).toBe('postgres://odoo@db:5432/x');
    expect(loadEnv({ root: dir, processEnv: { HOST: 'managed.example' } }).get('DATABASE_URL')).toBe(
      'postgres://odoo@managed.example:5432/x',
    );
  });

  it('uses the template defaults for keys no file sets, but never a secret', () => {
    const dir = project({ '.env.template': '# user\nPOSTGRES_USER=odoo\n# @secret\nPOSTGRES_PASSWORD=\n' });
    const env = loadEnv({ root: dir, processEnv: {} });
    expect(env.get('POSTGRES_USER')).toBe('odoo');
    expect(env.get('POSTGRES_PASSWORD')).toBeUndefined();
  });
});

describe('.env.template', () => {
  it('documents every key with a comment (the shipped template)', () => {
    const keys = readTemplate(repo);
    expect(keys.length).toBeGreaterThan(20);
    for (const k of keys) expect(k.comment, `${k.key} needs a comment in .env.template`).not.toBe('');
    expect(keys.find((k) => k.key === 'POSTGRES_PASSWORD')).toMatchObject({ secret: true, required: true });
    expect(keys.find((k) => k.key === 'APP_ENV')?.enumValues).toEqual(['development', 'staging', 'production']);
  });

  it('reports every missing or invalid key at once', async () => {
    const tpl = parseTemplate('# a\n# @enum a b\nMODE=a\n# n\n# @int\nCOUNT=3\n# p\n# @secret\nPASSWORD=\n# u\n# @url\nURL=\n');
    const dir = project({ '.env': 'MODE=c\nCOUNT=many\nURL=not a url\n' });
    const problems = await validateEnv(loadEnv({ root: dir, processEnv: {} }), tpl);
    expect(problems.map((p) => p.key).sort()).toEqual(['COUNT', 'MODE', 'PASSWORD', 'URL']);
    expect(problems.find((p) => p.key === 'MODE')?.problem).toBe('must be one of a, b (is "c")');
    expect(problems.find((p) => p.key === 'PASSWORD')?.problem).toBe('is missing');
  });

  it('remembers a passing set in an owner-only stamp (no value in it), and checks again as soon as a value changes', async () => {
    const tpl = parseTemplate('# n\n# @int\nCOUNT=3\n# p\n# @secret\n# @required\nPASSWORD=\n');
    const dir = project({ '.env': 'COUNT=4\nPASSWORD=hunter2-secret\n' });
    const cacheDir = path.join(dir, '.cache');
    expect(await validateEnv(loadEnv({ root: dir, processEnv: {} }), tpl, { cacheDir })).toEqual([]);
    const stamps = fs.readdirSync(path.join(cacheDir, 'env-ok'));
    expect(stamps).toHaveLength(1);
    expect(fs.statSync(path.join(cacheDir, 'env-ok')).mode & 0o777).toBe(0o700);
    expect(stamps[0]).not.toContain('hunter2');
    expect(fs.readFileSync(path.join(cacheDir, 'env-ok', stamps[0]!), 'utf8')).toBe('');
    fs.writeFileSync(path.join(dir, '.env'), 'COUNT=many\nPASSWORD=hunter2-secret\n');
    const problems = await validateEnv(loadEnv({ root: dir, processEnv: {} }), tpl, { cacheDir });
    expect(problems.map((p) => `${p.key} ${p.problem}`)).toEqual(['COUNT must be a whole number']);
  });
});

describe('env-init', () => {
  it('writes .env with mode 0600 and a strong generated secret for each password key', async () => {
    const dir = project({ '.env.template': fs.readFileSync(path.join(repo, '.env.template'), 'utf8') });
    initEnvFile(dir);
    const file = path.join(dir, '.env');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const env = loadEnv({ root: dir, processEnv: {} });
    expect(env.get('POSTGRES_PASSWORD')).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(await validateEnv(env, readTemplate(dir))).toEqual([]);
    const other = project({ '.env.template': fs.readFileSync(path.join(repo, '.env.template'), 'utf8') });
    initEnvFile(other);
    expect(loadEnv({ root: other, processEnv: {} }).get('POSTGRES_PASSWORD')).not.toBe(env.get('POSTGRES_PASSWORD'));
  });

  it('refuses to overwrite an existing .env and leaves it as it was', () => {
    const dir = project({ '.env.template': '# p\n# @secret\nPOSTGRES_PASSWORD=\n', '.env': 'POSTGRES_PASSWORD=mine\n' });
    expect(() => initEnvFile(dir)).toThrow(
      expect.objectContaining({ exitCode: ExitCode.refused, message: '.env already exists; not overwriting it' }),
    );
    expect(fs.readFileSync(path.join(dir, '.env'), 'utf8')).toBe('POSTGRES_PASSWORD=mine\n');
  });

  it('finds env files other users can read', () => {
    const dir = project({ '.env': 'A=1\n', '.env.local': 'B=2\n' });
    fs.chmodSync(path.join(dir, '.env'), 0o644);
    expect(worldReadableEnvFiles(dir, ['.env', '.env.local'])).toEqual(['.env']);
  });
});
