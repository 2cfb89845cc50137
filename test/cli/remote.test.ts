// A remote engine as users select it (DOCKER_HOST=ssh://…, DOCKER_CONTEXT), through the real CLI: what it prints before
// anything runs. No server is contacted: dry runs, compose config (no engine needed) and probes that answer locally.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { PARAMIKO_REFUSAL } from '../../scripts/tools/engine.ts';
import { errorLines } from '../harness/expect.ts';

const repo = path.resolve(import.meta.dirname, '../..');
let dir = '';
const dirs: string[] = [];

function tasks(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [path.join(dir, 'bin/tasks.mjs'), ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: os.tmpdir(), POSTGRES_PASSWORD: 'pw-remote-0123', COMPOSE_PROJECT_NAME: 'remotecli', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 90_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const temp = (name: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  dirs.push(d);
  return d;
};

/** A docker-compose (v1) first on PATH whose shebang interpreter answers `import paramiko` with `code`; it runs compose as the real one. */
function v1With(code: number): { PATH: string; log: string } {
  const bin = temp('v1bin');
  const log = path.join(bin, 'interp.log');
  const real = spawnSync('sh', ['-c', 'command -v docker-compose'], { encoding: 'utf8' }).stdout.trim();
  const interp = path.join(bin, 'python-fixture');
  // `-c 'import paramiko'` is the check; anything else is compose itself: the real one runs it.
  fs.writeFileSync(interp, `#!/bin/sh\nif [ "$1" = -c ]; then echo "$@" >> ${log}; exit ${code}; fi\nshift\nexec ${real} "$@"\n`, {
    mode: 0o755,
  });
  fs.writeFileSync(path.join(bin, 'docker-compose'), `#!${interp}\n# then: ${real}\n`, { mode: 0o755 });
  return { PATH: `${bin}:${process.env.PATH}`, log };
}

const hasV1 = spawnSync('sh', ['-c', 'docker-compose version --short'], { stdio: 'ignore' }).status === 0;

beforeAll(() => {
  dir = temp('remote-cli');
  for (const f of ['tasks.ts', 'package.json', 'tsconfig.json', '.env.template', 'bin', 'scripts', 'compose', 'addons', 'seeds']) {
    if (fs.existsSync(path.join(repo, f))) fs.cpSync(path.join(repo, f), path.join(dir, f), { recursive: true });
  }
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
});
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('a remote engine (DOCKER_HOST=ssh://…)', () => {
  const remote = { DOCKER_HOST: 'ssh://deploy@vps.example.invalid:2222' };

  it('backup reads a path part through a one-off container of the app image on the server, not from this disk', () => {
    const r = tasks(['backup', '--only', 'addons', '--dry-run'], {
      DOCKER_HOST: 'tcp://vps.example.invalid:2376',
      COMPOSE_CMD: 'docker-compose',
      ODOO_IMAGE: 'registry.example/odoo:17.0-7',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `addons: ${dir}/addons is read on the engine's host (vps.example.invalid) ` +
        'through a one-off container of registry.example/odoo:17.0-7',
    );
    const run = r.stderr.split('\n').find((l) => l.includes('$ docker run '));
    expect(run).toBeDefined();
    expect(run).toContain(
      'docker run --rm -i --pull never --user 0 --entrypoint sh ' +
        `--mount type=bind,source=${dir},target=/mnt/compose-tasks-part,readonly registry.example/odoo:17.0-7 -c `,
    );
    expect(run).toMatch(/ sh \/mnt\/compose-tasks-part\/addons > \S+addons\.tar$/);
    expect(r.stderr).not.toContain(`tar -C ${dir}/addons`);
  });

  it('locally the same part is the host tar, as before', () => {
    const r = tasks(['backup', '--only', 'addons', '--dry-run'], { COMPOSE_CMD: 'docker compose', DOCKER_CONFIG: temp('cfg') });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`tar -C ${dir}/addons -cf - .`);
    expect(r.stderr).not.toContain('/mnt/compose-tasks-part');
  });

  it('dev warns once, before anything starts, which project paths the server resolves, and prints URLs with its host', () => {
    if (!hasV1) throw new Error('docker-compose (v1) is needed here to read the compose config');
    // The real docker-compose: `config` needs no engine; its interpreter must import paramiko (prereqs install it).
    const r = tasks(['dev', '--dry-run'], { ...remote, COMPOSE_CMD: 'docker-compose' });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n');
    const warn = lines.findIndex((l) => l.includes('these bind mounts are read on vps.example.invalid'));
    const up = lines.findIndex((l) => / up -d/.test(l));
    expect(warn).toBeGreaterThanOrEqual(0);
    expect(warn).toBeLessThan(up);
    expect(lines[warn]).toContain('./addons, ./compose/odoo.conf');
    expect(lines.filter((l) => l.includes('these bind mounts'))).toHaveLength(1);
    expect(r.stdout).toContain('Odoo: http://vps.example.invalid:8069');
    expect(r.stdout).not.toContain('localhost');
    expect(r.stderr + r.stdout).not.toContain('pw-remote-0123');
  });

  it('a local engine: no warning, URLs on localhost', () => {
    const r = tasks(['dev', '--dry-run'], { COMPOSE_CMD: 'docker-compose', DOCKER_CONFIG: temp('cfg') });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('bind mounts');
    expect(r.stdout).toContain('Odoo: http://localhost:8069');
    // A dry run says nothing was started, not that the stack is up.
    expect(r.stderr).toContain('[dry-run] nothing was started');
    expect(r.stderr).not.toContain('the stack is up and healthy');
  });

  it('Compose v1 without paramiko: every compose task refuses at once with one line (exit 6)', () => {
    const { PATH, log } = v1With(1);
    for (const args of [['status'], ['logs'], ['dev', '--dry-run'], ['down'], ['odoo-restart']]) {
      const r = tasks(args, { ...remote, PATH, COMPOSE_CMD: 'docker-compose' });
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(6);
      expect(errorLines(r.stderr), r.stderr).toEqual([`error: ${PARAMIKO_REFUSAL}`]);
      expect(r.stderr).not.toMatch(/ \$ docker-compose/);
    }
    expect(fs.readFileSync(log, 'utf8')).toContain('-c import paramiko');
  });

  it('doctor names the engine, where it came from, and the paramiko check', () => {
    const { PATH } = v1With(1);
    const r = tasks(['doctor', '--json'], { ...remote, PATH, COMPOSE_CMD: 'docker-compose' });
    const report = JSON.parse(r.stdout) as { checks: Array<{ name: string; status: string; message: string }> };
    const engine = report.checks.find((c) => c.name === 'engine')!;
    expect(engine.status).toBe('fail');
    expect(engine.message).toContain('remote engine vps.example.invalid (ssh://deploy@vps.example.invalid:2222, from DOCKER_HOST)');
    const ssh = report.checks.find((c) => c.name === 'compose-ssh')!;
    expect(ssh.status).toBe('fail');
    expect(ssh.message).toContain(PARAMIKO_REFUSAL);
  });
});

describe('a docker context', () => {
  it('DOCKER_CONTEXT with Compose v1: passed as --context (v1 ignores the variable); doctor names the context', () => {
    const cfg = temp('ctx');
    const made = spawnSync('docker', ['context', 'create', 'vps', '--docker', 'host=tcp://vps.example.invalid:2376'], {
      env: { ...process.env, DOCKER_CONFIG: cfg },
      encoding: 'utf8',
    });
    expect(made.status, made.stderr).toBe(0);
    const env = { DOCKER_CONFIG: cfg, DOCKER_CONTEXT: 'vps', COMPOSE_CMD: 'docker-compose' };
    const r = tasks(['logs', '--dry-run'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\$ docker-compose --context vps --project-directory /);
    const doc = JSON.parse(tasks(['doctor', '--json'], env).stdout) as { checks: Array<{ name: string; message: string }> };
    expect(doc.checks.find((c) => c.name === 'engine')!.message).toContain(
      'remote engine vps.example.invalid (tcp://vps.example.invalid:2376, from DOCKER_CONTEXT=vps)',
    );
    // `docker context use`: no variable, the current context in config.json.
    spawnSync('docker', ['context', 'use', 'vps'], { env: { ...process.env, DOCKER_CONFIG: cfg } });
    const used = JSON.parse(tasks(['doctor', '--json'], { DOCKER_CONFIG: cfg, COMPOSE_CMD: 'docker-compose' }).stdout) as {
      checks: Array<{ name: string; message: string }>;
    };
    expect(used.checks.find((c) => c.name === 'engine')!.message).toContain('from context vps (docker context use)');
  });
});
