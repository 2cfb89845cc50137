// Names and files people actually have: a project folder and a BACKUP_DIR with spaces, quotes and non-ASCII characters,
// .env files with CRLF line endings or a UTF-8 BOM, and the crontab line run the way cron runs it with an unusual HOME and PATH.
// URL mode against the throwaway PostgreSQL: backup, verify, restore round trip.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { adminQuery, createTestDatabaseInfo, type TestDatabase } from '../harness/pg.ts';
import { makeProject, type TestProject } from '../harness/project.ts';

const pg = inject('pg');
const projects: TestProject[] = [];

/** A project copy under `dirPrefix` whose filestore is a host folder and that has no app service (URL mode, no Docker). */
async function urlProject(db: TestDatabase, dirPrefix: string, env: Record<string, string> = {}): Promise<TestProject> {
  const p = await makeProject({
    dirPrefix,
    env: { DATABASE_URL: db.url, POSTGRES_DB: db.name, POSTGRES_USER: db.user, POSTGRES_PASSWORD: db.password, ...env },
  });
  projects.push(p);
  const tasksFile = path.join(p.dir, 'tasks.ts');
  const text = fs
    .readFileSync(tasksFile, 'utf8')
    .replace(/\{ name: 'filestore', kind: 'volume'[^}]*\}/, "{ name: 'filestore', kind: 'path', path: 'data/file store é' }")
    .replace(/appServices: \[[^\]]*\]/, 'appServices: []')
    .replace(/\n {2}healthCheck: \{[\s\S]*?\n {2}\},\n/, '\n');
  expect(text).toContain("path: 'data/file store é'");
  expect(text).not.toContain('healthCheck:');
  fs.writeFileSync(tasksFile, text);
  return p;
}

/** Files a user has: names with spaces, quotes, accents and other scripts. */
const FILES: Record<string, string> = {
  'pièces/facture n° 12.pdf': 'facture',
  "pièces/l'été 2026.txt": 'été',
  'データ/日本語 ファイル.bin': crypto.randomBytes(3000).toString('base64'),
  'x y/"quoted" $HOME `x`.txt': 'shell characters',
};

function writeFiles(dir: string): void {
  for (const [f, content] of Object.entries(FILES)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), content);
  }
}

function readFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const full = path.join(dir, f);
    if (fs.statSync(full).isFile()) out[f] = fs.readFileSync(full, 'utf8');
  }
  return out;
}

const archives = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.tar.gz')) : []);

afterAll(async () => {
  for (const p of projects) await p.cleanup();
});

describe('paths with spaces and non-ASCII characters', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabaseInfo(pg, 'paths');
    await adminQuery(pg, db.name, `CREATE TABLE notes (id int PRIMARY KEY, body text); ALTER TABLE notes OWNER TO "${db.user}"`);
    await adminQuery(pg, db.name, "INSERT INTO notes VALUES (1, 'première note ✓')");
  });

  it('project under "/tmp/ct proj é…", BACKUP_DIR "my backups/été 2026": backup, verify, restore round trip', async () => {
    const p = await urlProject(db, "ct proj é'q-", { BACKUP_DIR: 'my backups/été 2026' });
    const store = path.join(p.dir, 'data', 'file store é');
    writeFiles(store);
    const b = await p.run(['backup']);
    expect(b.code, b.stderr).toBe(0);
    const backupDir = path.join(p.dir, 'my backups', 'été 2026');
    const [archive] = archives(backupDir);
    expect(archive, b.stderr).toBeDefined();
    expect(b.stdout.trim()).toBe(path.join(backupDir, archive!));
    const name = archive!.replace(/\.tar\.gz$/, '');

    const v = await p.run(['verify', name]);
    expect(v.code, v.stderr).toBe(0);

    // Change everything the backup holds, then restore it.
    await adminQuery(pg, db.name, "UPDATE notes SET body = 'changed'");
    fs.rmSync(store, { recursive: true });
    fs.mkdirSync(store, { recursive: true });
    fs.writeFileSync(path.join(store, 'new file.txt'), 'not in the backup');
    // With the safety backup: a second archive written into the same folder first.
    await new Promise((res) => setTimeout(res, 1100));
    const r = await p.run(['restore', name, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(archives(backupDir)).toHaveLength(2);
    expect(await adminQuery(pg, db.name, 'SELECT body FROM notes')).toBe('première note ✓');
    expect(readFiles(store)).toEqual(FILES);
  });
});

describe('.env with CRLF line endings or a UTF-8 BOM', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabaseInfo(pg, 'crlf');
  });

  it.each([
    ['CRLF', (t: string) => t.replace(/\n/g, '\r\n')],
    ['a BOM', (t: string) => `\uFEFF${t}`],
    ['a BOM and CRLF', (t: string) => `\uFEFF${t.replace(/\n/g, '\r\n')}`],
  ])('%s: every key read as written, the first one included; doctor finds it valid; backup works', async (_what, convert) => {
    const p = await urlProject(db, 'ct-crlf-');
    const envFile = path.join(p.dir, '.env');
    // The first line is a key (no comment above it): a BOM sticks to it when nothing strips it.
    const lines = fs.readFileSync(envFile, 'utf8').split('\n');
    const body = ['APP_ENV=staging', 'BACKUP_DIR="backups crlf"', ...lines.filter((l) => !/^(APP_ENV|BACKUP_DIR)=/.test(l))].join('\n');
    fs.writeFileSync(envFile, convert(body), { mode: 0o600 });
    const expected = Object.fromEntries(
      body
        .split('\n')
        .map((l) => /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(l))
        .filter((m): m is RegExpExecArray => Boolean(m))
        .map((m) => [m[1]!, m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!]),
    );
    // `tasks env` is not a task: the values the tasks see come out of a one-line task in tasks.ts.
    const tasksFile = path.join(p.dir, 'tasks.ts');
    fs.writeFileSync(
      tasksFile,
      fs
        .readFileSync(tasksFile, 'utf8')
        .replace(
          'const myTasks: AnyTask[] = [',
          "const myTasks: AnyTask[] = [\n  defineTask({ name: 'print-env', description: 'test', group: 'custom', async run(ctx) " +
            '{ ctx.out.write(JSON.stringify(ctx.env.values)); } }),',
        ),
    );
    const r = await p.run(['print-env']);
    expect(r.code, r.stderr).toBe(0);
    const seen = JSON.parse(r.stdout) as Record<string, string>;
    for (const [k, v] of Object.entries(expected)) expect(seen[k], k).toBe(v);
    expect(Object.keys(seen).filter((k) => /[^\w]/.test(k))).toEqual([]);

    const doctor = JSON.parse((await p.run(['doctor', '--json'])).stdout) as { checks: Array<{ name: string; status: string }> };
    expect(doctor.checks.find((c) => c.name === 'env')?.status).toBe('ok');
    const b = await p.run(['backup', '--only', 'db']);
    expect(b.code, b.stderr).toBe(0);
    expect(archives(path.join(p.dir, 'backups crlf'))).toHaveLength(1);
  });

  it('env-init works from a CRLF / BOM .env.template (a Windows checkout) and writes every key once, no BOM, no CR', async () => {
    const p = await makeProject({ writeEnv: false });
    projects.push(p);
    const tpl = path.join(p.dir, '.env.template');
    const original = fs.readFileSync(tpl, 'utf8');
    fs.writeFileSync(tpl, `\uFEFF${original.replace(/\n/g, '\r\n')}`);
    const r = await p.run(['env-init']);
    expect(r.code, r.stderr).toBe(0);
    const written = fs.readFileSync(path.join(p.dir, '.env'), 'utf8');
    expect(written).not.toMatch(/\r|\uFEFF/);
    const keys = (t: string) => t.split(/\r?\n/).flatMap((l) => /^\uFEFF?([A-Z_][A-Z0-9_]*)=/.exec(l)?.[1] ?? []);
    expect(keys(written)).toEqual(keys(original));
    expect(written).toMatch(/^POSTGRES_PASSWORD=[\w-]{40,}$/m);
    const doctor = JSON.parse((await p.run(['doctor', '--json'])).stdout) as { checks: Array<{ name: string; status: string }> };
    expect(doctor.checks.find((c) => c.name === 'env')?.status).toBe('ok');
  });
});

describe('the crontab line under cron’s environment', () => {
  it('project path with a space and a quote, HOME=/nonexistent, PATH=/usr/bin:/bin, no terminal: the backup runs', async () => {
    const db = await createTestDatabaseInfo(pg, 'cronpath');
    const p = await urlProject(db, "ct cron 'é' %-", { BACKUP_DIR: 'back ups', BACKUP_LOG: 'back ups/cron log.txt' });
    const install = await p.run(['cron-install', '--dry-run']);
    expect(install.code, install.stderr).toBe(0);
    const line = install.stderr.split('\n').find((l) => l.startsWith('0 2 */5 * * '));
    expect(line, install.stderr).toBeDefined();
    // What cron does with the line: the command after the five fields, `\%` back to `%`, run by sh with a bare environment.
    const command = line!.split(' ').slice(5).join(' ').replace(/\\%/g, '%');
    // Not there (a dry run installs nothing; or removed by hand since): the line makes the log's folder itself.
    expect(fs.existsSync(path.join(p.dir, 'back ups'))).toBe(false);
    writeFiles(path.join(p.dir, 'data', 'file store é'));
    const r = spawnSync('env', ['-i', 'PATH=/usr/bin:/bin', 'HOME=/nonexistent', 'SHELL=/bin/sh', 'setsid', 'sh', '-c', command], {
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      timeout: 240_000,
    });
    const log = path.join(p.dir, 'back ups', 'cron log.txt');
    const logText = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '(no log)';
    expect(r.status, `${command}\n${r.stderr}\n${logText}`).toBe(0);
    expect(archives(path.join(p.dir, 'back ups')), logText).toHaveLength(1);
    expect(logText).toMatch(/backup .* done/);
  });
});
