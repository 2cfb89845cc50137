// The real CLI as a subprocess (node bin/tasks.mjs) in a copy of the project: what a user types and sees.
import { beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const repo = path.resolve(import.meta.dirname, '../..');
let dir = '';

function tasks(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [path.join(dir, 'bin/tasks.mjs'), ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-'));
  for (const f of ['tasks.ts', 'package.json', 'tsconfig.json', '.env.template', 'bin', 'scripts', 'compose', 'addons', 'seeds']) {
    if (fs.existsSync(path.join(repo, f))) fs.cpSync(path.join(repo, f), path.join(dir, f), { recursive: true });
  }
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
});

const hasCompose = spawnSync('sh', ['-c', 'docker compose version || docker-compose version'], { stdio: 'ignore' }).status === 0;

describe('tasks (the CLI)', () => {
  it('with no arguments lists every task by group, with the service targets from the compose files', () => {
    const r = tasks([]);
    expect(r.code).toBe(0);
    for (const group of ['stack:', 'services:', 'database:', 'backups:', 'setup:']) expect(r.stdout).toContain(`\n${group}\n`);
    expect(r.stdout).toMatch(/\n {2}dev +Start the stack/);
    if (!hasCompose)
      throw new Error('docker compose (or docker-compose) is needed to generate service targets: install it (the CI script does)');
    for (const t of ['shell-odoo', 'logs-db', 'odoo-restart', 'odoo-rebuild', 'db-stop']) expect(r.stdout).toContain(`  ${t} `);
    expect(tasks(['--list']).stdout).toBe(r.stdout);
  });

  it('suggests the nearest task for a typo and exits 2', () => {
    const r = tasks(['stpo']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'stpo'");
    expect(r.stderr).toContain('Did you mean stop?');
  });

  it('rejects an unknown option with exit 2', () => {
    const r = tasks(['logs', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--bogus'");
  });

  it('explains a task: help <task> and <task> --help', () => {
    const a = tasks(['help', 'down']);
    const b = tasks(['down', '--help']);
    expect(a.code).toBe(0);
    expect(a.stdout).toContain('--volumes');
    expect(a.stdout).toContain('Example:\n  $ tasks down --volumes --yes');
    expect(b.stdout).toBe(a.stdout);
  });

  it('in dry-run prints the compose command with the password masked and runs nothing', () => {
    const secret = 'Sup3r-Secret-Pw';
    const r = tasks(['shell-db', '--dry-run', '--', 'psql', `postgres://odoo:${secret}@db/odoo`, '-c', 'select 1'], {
      POSTGRES_PASSWORD: secret,
      COMPOSE_PROJECT_NAME: 'clitest',
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(
      new RegExp(
        [
          /\[dry-run\] \$ docker(-compose| compose) --project-directory \S+ -f compose\/compose\.yaml -f compose\/compose\.dev\.yaml/,
          / exec -T db psql postgres:\/\/odoo:\*\*\*@db\/odoo -c 'select 1'/,
        ]
          .map((r) => r.source)
          .join(''),
      ),
    );
    expect(r.stderr + r.stdout).not.toContain(secret);
  });

  it('refuses a destructive task without a terminal unless --yes, and never waits for input', () => {
    const r = tasks(['down', '--volumes'], { POSTGRES_PASSWORD: 'x1234567', COMPOSE_PROJECT_NAME: 'clitest' });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('pass --yes to confirm without a terminal');
    expect(r.stderr).not.toContain('$ docker');
  });

  it('reports an invalid environment with exit 4, naming every key and the file', () => {
    const r = tasks(['stop'], { APP_ENV: 'development', WAIT_TIMEOUT: 'soon', COMPOSE_PROJECT_NAME: 'clitest' });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('POSTGRES_PASSWORD is missing; WAIT_TIMEOUT must be a whole number');
    expect(r.stderr).toContain('tasks env-init');
  });

  it('env-init writes a private .env once and refuses to overwrite it', () => {
    const first = tasks(['env-init']);
    expect(first.code).toBe(0);
    const text = fs.readFileSync(path.join(dir, '.env'), 'utf8');
    expect(fs.statSync(path.join(dir, '.env')).mode & 0o777).toBe(0o600);
    expect(text).toMatch(/^POSTGRES_PASSWORD=[A-Za-z0-9_-]{40,}$/m);
    const second = tasks(['env-init']);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain('.env already exists; not overwriting it');
    expect(fs.readFileSync(path.join(dir, '.env'), 'utf8')).toBe(text);
    fs.rmSync(path.join(dir, '.env'));
  });
});
