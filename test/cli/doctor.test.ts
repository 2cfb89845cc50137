// `tasks doctor` through the real CLI against each broken prerequisite (the healthy setup is in test/e2e/doctor.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { renderEnvFromTemplate } from '../../scripts/core/env.ts';
import { backupName } from '../../scripts/backup/manifest.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const dirs: string[] = [];

/** A copy of the project with its own .env (mode 0600 unless told). */
function project(env: Record<string, string>, o: { mode?: number } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'doctor-'));
  dirs.push(dir);
  for (const f of [
    'tasks.ts',
    'package.json',
    'tsconfig.json',
    '.env.template',
    'bin',
    'scripts',
    'compose',
    'addons',
    'seeds',
    'storage',
  ]) {
    if (fs.existsSync(path.join(repo, f))) fs.cpSync(path.join(repo, f), path.join(dir, f), { recursive: true });
  }
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
  const text = renderEnvFromTemplate(fs.readFileSync(path.join(dir, '.env.template'), 'utf8'), {
    COMPOSE_PROJECT_NAME: `doctor${process.pid}`,
    POSTGRES_PASSWORD: 'pw-0123456789abcdef',
    ...env,
  });
  fs.writeFileSync(path.join(dir, '.env'), text, { mode: o.mode ?? 0o600 });
  fs.chmodSync(path.join(dir, '.env'), o.mode ?? 0o600);
  return dir;
}

function tasks(dir: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [path.join(dir, 'bin/tasks.mjs'), ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Report {
  ok: boolean;
  checks: Array<{ name: string; ok: boolean; status: string; message: string; fix?: string }>;
}
const check = (r: Report, name: string) => r.checks.find((c) => c.name === name)!;

/** A port nobody listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((res) => srv.close(res));
  return port;
}

afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('tasks doctor', () => {
  let healthyDir = '';
  beforeAll(() => {
    healthyDir = project({});
  });

  it('with no docker binary on PATH says so with the install hint and exits 6', () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'onlynode-'));
    dirs.push(bin);
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    const r = tasks(healthyDir, ['doctor'], { PATH: bin });
    expect(r.code).toBe(6);
    expect(r.stdout).toMatch(/^\[FAIL\] docker +docker not found on PATH$/m);
    expect(r.stdout).toMatch(/fix: install Docker Engine: https:\/\/docs\.docker\.com\/engine\/install\//);
    expect(r.stdout).toMatch(/^\[skip\] engine +needs docker$/m);
    expect(r.stderr).toContain('error: doctor: 1 check failed (docker)');
  });

  it('with the engine down (docker info cannot connect) says the engine is not running and how to start it', () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'enginedown-'));
    dirs.push(bin);
    // The one fault that cannot be produced without stopping this machine's daemon: docker answers like a stopped engine.
    fs.writeFileSync(
      path.join(bin, 'docker'),
      '#!/bin/sh\necho "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const r = tasks(healthyDir, ['doctor', '--json'], { PATH: `${bin}:${process.env.PATH}` });
    expect(r.code).toBe(6);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.ok).toBe(false);
    expect(check(report, 'engine')).toMatchObject({ ok: false, message: 'the Docker engine is not running' });
    expect(check(report, 'engine').fix).toContain('sudo systemctl start docker');
    expect(check(report, 'docker').ok).toBe(true);
  });

  it('refuses an invalid APP_ENV in .env with exit 4 and names the allowed values', () => {
    const dir = project({ APP_ENV: 'prod' });
    const r = tasks(dir, ['doctor']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('APP_ENV must be one of development, staging, production, not "prod"');
  });

  it('reports a missing password in .env, naming the key and the file to fix', () => {
    const dir = project({ POSTGRES_PASSWORD: '' });
    const r = tasks(dir, ['doctor', '--json']);
    expect(r.code).toBe(6);
    const env = check(JSON.parse(r.stdout) as Report, 'env');
    expect(env.ok).toBe(false);
    expect(env.message).toBe('invalid environment (development): POSTGRES_PASSWORD is missing');
    expect(env.fix).toBe('fix .env (every key is documented in .env.template)');
  });

  it('reports a world-readable .env with the chmod that fixes it', () => {
    const dir = project({}, { mode: 0o644 });
    const r = tasks(dir, ['doctor']);
    expect(r.code).toBe(6);
    expect(r.stdout).toMatch(/^\[FAIL\] env-permissions +\.env readable by other users \(it holds passwords\)$/m);
    expect(r.stdout).toContain('fix: chmod 600 .env');
  });

  it('reports an unreachable S3 endpoint (a closed port) with the endpoint to check', async () => {
    const port = await closedPort();
    const dir = project({
      S3_BUCKET: 'backups',
      S3_ENDPOINT: `http://127.0.0.1:${port}`,
      S3_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    });
    const r = tasks(dir, ['doctor', '--json']);
    expect(r.code).toBe(6);
    const s3 = check(JSON.parse(r.stdout) as Report, 's3');
    expect(s3.ok).toBe(false);
    expect(s3.message).toContain(`http://127.0.0.1:${port} s3://backups: cannot write a test object`);
    expect(s3.fix).toBe(`check S3_ENDPOINT (http://127.0.0.1:${port}) and the network`);
    expect(r.stdout + r.stderr).not.toContain('S3RVER"');
  });

  it('in staging flags a missing cron entry and a backup older than the schedule', () => {
    const dir = project({ APP_ENV: 'staging', COMPOSE_PROJECT_NAME: `nocron${process.pid}`, BACKUP_CRON: '0 2 * * *' });
    fs.mkdirSync(path.join(dir, 'backup'));
    const old = backupName(`nocron${process.pid}`, new Date(Date.now() - 10 * 86400_000));
    fs.writeFileSync(path.join(dir, 'backup', `${old}.tar.gz`), 'x'.repeat(1000));
    const r = tasks(dir, ['doctor', '--json']);
    expect(r.code).toBe(6);
    const report = JSON.parse(r.stdout) as Report;
    expect(check(report, 'last-backup').ok).toBe(false);
    expect(check(report, 'last-backup').message).toBe(
      `last backup ${old} is 10.0 days old; the schedule "0 2 * * *" runs at least every 24.0 hours; ` +
        'prune deletes nothing until a new backup',
    );
    expect(check(report, 'last-backup').fix).toContain('tasks backup');
    const cron = check(report, 'cron');
    expect(cron.ok).toBe(false);
    expect(cron.fix).toMatch(/tasks cron-install/);
  });

  it('production with no NOTIFY_URL / NOTIFY_SMTP_URL / HEALTHCHECK_URL: doctor, setup and cron-install warn, naming the keys', () => {
    const dir = project({ APP_ENV: 'production' });
    const report = JSON.parse(tasks(dir, ['doctor', '--json']).stdout) as Report;
    expect(check(report, 'notify')).toMatchObject({ ok: true, status: 'warn' });
    expect(check(report, 'notify').message).toMatch(/^nobody hears about a failed backup: NOTIFY_URL, NOTIFY_SMTP_URL and HEALTHCHECK_URL/);
    expect(check(report, 'notify').fix).toMatch(/^set NOTIFY_URL .*NOTIFY_SMTP_URL \+ NOTIFY_EMAIL_TO, or HEALTHCHECK_URL in \.env$/);
    const setup = tasks(dir, ['setup', '--dry-run', '--no-cron', '--no-backup']);
    expect(setup.stderr).toMatch(/\[warn\] notify +nobody hears about a failed backup/);
    const cron = tasks(dir, ['cron-install', '--dry-run']);
    expect(cron.code, cron.stderr).toBe(0);
    expect(cron.stderr).toMatch(/warning: nobody hears about a failed backup: .*; set NOTIFY_URL /);

    const dev = JSON.parse(tasks(project({}), ['doctor', '--json']).stdout) as Report;
    expect(check(dev, 'notify').status).toBe('skip');
    const hook = 'https://hooks.slack.com/services/T0AAAA/B0BBBB/xoxbSecretToken123';
    const set = project({ APP_ENV: 'production', NOTIFY_URL: hook, NOTIFY_SMTP_URL: 'smtp://u:pw-123456@127.0.0.1:9' });
    const r = tasks(set, ['doctor', '--json']);
    const ok = JSON.parse(r.stdout) as Report;
    // An SMTP URL without a recipient cannot send anything.
    expect(check(ok, 'notify')).toMatchObject({ status: 'warn', fix: 'set NOTIFY_EMAIL_TO in .env' });
    fs.appendFileSync(path.join(set, '.env'), 'NOTIFY_EMAIL_TO=ops@example.com\n');
    const again = JSON.parse(tasks(set, ['doctor', '--json']).stdout) as Report;
    expect(check(again, 'notify')).toMatchObject({
      status: 'ok',
      message: 'a failed backup is reported to NOTIFY_URL (slack), e-mail to ops@example.com',
    });
    expect(r.stdout + r.stderr).not.toContain('xoxbSecretToken123');
  });

  it('setup --dry-run on a fresh clone prints each step and its commands, and writes nothing', () => {
    const dir = project({});
    fs.rmSync(path.join(dir, '.env'));
    // No engine at all (a laptop before Docker starts): the dry run still shows the whole plan, and says where the
    // real run would stop.
    const r = tasks(dir, ['setup', '--dry-run'], { COMPOSE_PROJECT_NAME: `dryrun${process.pid}`, DOCKER_HOST: `unix://${dir}/no.sock` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\[dry-run\] the real setup would stop here: engine: /);
    expect(r.stderr).toContain('[dry-run] would write .env from .env.template');
    expect(r.stderr).toMatch(/\[dry-run\] \$ docker(-compose| compose) .* pull /);
    expect(r.stderr).toMatch(/\[dry-run\] \$ docker(-compose| compose) .* up -d/);
    expect(r.stderr).toContain('[dry-run] would run: tasks cron-install');
    expect(r.stderr).toContain('[dry-run] would run: tasks backup');
    expect(fs.existsSync(path.join(dir, '.env'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'backup'))).toBe(false);
  });
});
