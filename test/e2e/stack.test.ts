// End to end on a real Docker engine: the SHIPPED compose files with the stand-in images, driven through the real CLI.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeProject, type TestProject } from '../harness/project.ts';
import { describeE2E } from '../harness/e2e.ts';

const docker = inject('docker');

interface Container {
  service: string;
  id: string;
  status: string;
  startedAt: string;
  health: string;
}

/** Every container of the project (running or not), by compose's labels: the same for compose v1 and v2. */
async function containers(p: TestProject): Promise<Record<string, Container>> {
  const ps = await p.docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${p.name}`]);
  const ids = ps.stdout.split('\n').filter(Boolean);
  if (!ids.length) return {};
  const fmt =
    '{{index .Config.Labels "com.docker.compose.service"}}\t{{.Id}}\t{{.State.Status}}\t{{.State.StartedAt}}\t' +
    '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}';
  const r = await p.docker(['inspect', '--format', fmt, ...ids]);
  const out: Record<string, Container> = {};
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [service = '', id = '', status = '', startedAt = '', health = ''] = line.split('\t');
    out[service] = { service, id, status, startedAt, health };
  }
  return out;
}

async function volumes(p: TestProject): Promise<string[]> {
  const r = await p.docker(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${p.name}`]);
  return r.stdout.split('\n').filter(Boolean).sort();
}

const show = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describeE2E('the shipped stack on a real Docker engine', () => {
  let p: TestProject;
  beforeAll(async () => {
    p = await makeProject({ docker });
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('`dev` brings db and odoo up to healthy, prints the URL, and the app answers on the published port', async () => {
    const r = await p.run(['dev']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain(`Odoo: http://localhost:${p.env.ODOO_PORT}`);
    const c = await containers(p);
    expect(c.db).toMatchObject({ status: 'running', health: 'healthy' });
    expect(c.odoo).toMatchObject({ status: 'running', health: 'healthy' });

    const status = await p.run(['status']);
    expect(status.code, show(status)).toBe(0);
    expect(status.stdout).toMatch(/^db\s+running\s+healthy\s+[0-9a-f]{12}$/m);
    expect(status.stdout).toMatch(/^odoo\s+running\s+healthy\s+[0-9a-f]{12}$/m);

    const res = await fetch(`http://127.0.0.1:${p.env.ODOO_PORT}/web/health`);
    expect(await res.json()).toEqual({ status: 'pass' });
    const health = await p.run(['health']);
    expect(health.code, show(health)).toBe(0);
  });

  it('`dev` again is a no-op on a healthy stack: same containers, still healthy', async () => {
    const before = await containers(p);
    const r = await p.run(['dev']);
    expect(r.code, show(r)).toBe(0);
    expect(await containers(p)).toEqual(before);
  });

  it('`shell-db -- psql ...` runs a command in the db service with no TTY and prints its output', async () => {
    const r = await p.run([
      'shell-db',
      '--',
      'psql',
      '-U',
      p.env.POSTGRES_USER ?? 'odoo',
      '-d',
      p.env.POSTGRES_DB ?? 'odoo',
      '-c',
      'select 1 as one',
    ]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/^\s*one\s*$/m);
    expect(r.stdout).toMatch(/^\s*1\s*$/m);
    expect(r.stderr).toContain('exec -T db psql');
    expect(r.stderr).not.toMatch(/not a TTY/i);
  });

  it('a failing command in `shell-db` passes its exit code through', async () => {
    const r = await p.run(['shell-db', '--', 'psql', '-U', p.env.POSTGRES_USER ?? 'odoo', '-d', 'no_such_database', '-c', 'select 1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no_such_database');
  });

  it('`logs-odoo` prints the application log', async () => {
    const r = await p.run(['logs-odoo']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('odoo.standin: HTTP service');
    expect(r.stdout).not.toContain('database system is ready');
  });

  it('`odoo-restart` restarts odoo only: the db container keeps its id and start time', async () => {
    const before = await containers(p);
    const r = await p.run(['odoo-restart']);
    expect(r.code, show(r)).toBe(0);
    const after = await containers(p);
    expect(after.odoo!.id).toBe(before.odoo!.id);
    expect(after.odoo!.startedAt).not.toBe(before.odoo!.startedAt);
    expect(after.odoo!.status).toBe('running');
    expect(after.db).toEqual(before.db);
  });

  it('`odoo-rebuild` recreates odoo only and waits until it is healthy; db untouched', async () => {
    const before = await containers(p);
    const r = await p.run(['odoo-rebuild']);
    expect(r.code, show(r)).toBe(0);
    const after = await containers(p);
    expect(after.odoo!.id).not.toBe(before.odoo!.id);
    expect(after.odoo).toMatchObject({ status: 'running', health: 'healthy' });
    expect(after.db).toEqual(before.db);
  });

  it('`health` exits 7 with one clear line while the application fails its health check, and 0 once it recovers', async () => {
    const marker = '/var/lib/odoo/.standin-unhealthy';
    const touch = await p.run(['shell-odoo', '--', 'touch', marker]);
    expect(touch.code, show(touch)).toBe(0);
    let r = await p.run(['health']);
    for (let i = 0; i < 20 && r.code === 0; i++) {
      await new Promise((s) => setTimeout(s, 500));
      r = await p.run(['health']);
    }
    expect(r.code, show(r)).toBe(7);
    expect(r.stderr).toMatch(/error: the odoo health check failed/);
    const rm = await p.run(['shell-odoo', '--', 'rm', '-f', marker]);
    expect(rm.code, show(rm)).toBe(0);
    for (let i = 0; i < 20 && r.code !== 0; i++) {
      await new Promise((s) => setTimeout(s, 500));
      r = await p.run(['health']);
    }
    expect(r.code, show(r)).toBe(0);
  });

  it('with the Docker engine unreachable, `status` says so in one line and exits 6', async () => {
    const r = await p.run(['status'], { env: { DOCKER_HOST: `unix://${path.join(p.dir, 'no-such-docker.sock')}` } });
    expect(r.code, show(r)).toBe(6);
    expect(r.stderr).toMatch(/^error: the Docker engine is not running$/m);
    expect(r.stderr).not.toMatch(/Traceback/);
  });

  it('`stop` stops every container and keeps them and the volumes', async () => {
    const vols = await volumes(p);
    expect(vols).toEqual([`${p.name}_db-data`, `${p.name}_odoo-data`]);
    const r = await p.run(['stop']);
    expect(r.code, show(r)).toBe(0);
    const c = await containers(p);
    expect(Object.keys(c).sort()).toEqual(['db', 'odoo']);
    expect(c.db!.status).toBe('exited');
    expect(c.odoo!.status).toBe('exited');
    expect(await volumes(p)).toEqual(vols);
  });

  it('`--dry-run dev` prints the docker-compose commands and starts nothing', async () => {
    const before = await containers(p);
    const r = await p.run(['--dry-run', 'dev']);
    expect(r.code, show(r)).toBe(0);
    const flavor = docker.composeCmd === 'docker compose' ? 'docker compose' : 'docker-compose';
    expect(r.stderr).toContain(`$ ${flavor} --project-directory ${p.dir} -f compose/compose.yaml -f compose/compose.dev.yaml up -d`);
    expect(r.stderr).not.toContain(p.env.POSTGRES_PASSWORD!);
    const after = await containers(p);
    expect(after.db!.status).toBe('exited');
    expect(after.odoo!.status).toBe('exited');
    expect(after.db!.startedAt).toBe(before.db!.startedAt);
  });

  it('`down` removes the containers and keeps the volumes', async () => {
    const r = await p.run(['down']);
    expect(r.code, show(r)).toBe(0);
    expect(await containers(p)).toEqual({});
    expect(await volumes(p)).toEqual([`${p.name}_db-data`, `${p.name}_odoo-data`]);
  });

  it('`down --volumes` with no terminal and no --yes is refused (exit 3) and deletes nothing', async () => {
    const r = await p.run(['down', '--volumes']);
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr).toMatch(/--yes/);
    expect(await volumes(p)).toEqual([`${p.name}_db-data`, `${p.name}_odoo-data`]);
  });

  it('`down --volumes --yes` deletes the volumes', async () => {
    const r = await p.run(['down', '--volumes', '--yes']);
    expect(r.code, show(r)).toBe(0);
    expect(await volumes(p)).toEqual([]);
  });

  it('a service added in an extra compose file (COMPOSE_FILE) gets its own targets without editing tasks.ts', async () => {
    fs.writeFileSync(path.join(p.dir, 'compose/extra.yaml'), 'services:\n  mailcatcher:\n    image: local/not-pulled:1\n');
    const env = { COMPOSE_FILE: 'compose/compose.yaml:compose/compose.dev.yaml:compose/extra.yaml' };
    const r = await p.run(['--list'], { env });
    expect(r.code, show(r)).toBe(0);
    for (const t of [
      'shell-mailcatcher',
      'logs-mailcatcher',
      'mailcatcher-restart',
      'mailcatcher-rebuild',
      'mailcatcher-stop',
      'shell-odoo',
    ])
      expect(r.stdout).toContain(`  ${t} `);
    const without = await p.run(['--list']);
    expect(without.stdout).not.toContain('mailcatcher');
  });

  it('with no `docker` on PATH, `status` fails with one clear line and exit 6', async () => {
    // docker-compose v1 alone runs without the docker CLI: keep it, hide docker.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-nodocker-'));
    try {
      for (const tool of ['docker-compose']) {
        const real = (process.env.PATH ?? '')
          .split(':')
          .map((d) => path.join(d, tool))
          .find((f) => fs.existsSync(f));
        if (real) fs.symlinkSync(real, path.join(bin, tool));
      }
      const r = await p.run(['status'], { env: { PATH: bin } });
      expect(r.code, show(r)).toBe(6);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(/Docker is not installed: no `docker` command on PATH/);
      expect(lines.length).toBeLessThanOrEqual(2);
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });
});

describeE2E('`dev` on a fresh checkout (no .env)', () => {
  let p: TestProject;
  beforeAll(async () => {
    p = await makeProject({ docker, writeEnv: false });
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('`npx tsx tasks.ts dev` creates .env (0600, generated secrets), brings the stack up, the secret reaches both services', async () => {
    expect(fs.existsSync(path.join(p.dir, '.env'))).toBe(false);
    const r = await p.run(['dev'], { entry: 'tsx' });
    expect(r.code, show(r)).toBe(0);
    const file = path.join(p.dir, '.env');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const password = /^POSTGRES_PASSWORD=(.+)$/m.exec(fs.readFileSync(file, 'utf8'))?.[1] ?? '';
    expect(password.length).toBeGreaterThanOrEqual(32);
    expect(r.stderr).not.toContain(password);
    const c = await containers(p);
    expect(c.db).toMatchObject({ status: 'running', health: 'healthy' });
    expect(c.odoo).toMatchObject({ status: 'running', health: 'healthy' });
    // odoo reaches PostgreSQL over TCP (scram) with the generated password.
    const q = await p.run(['shell-odoo', '--', 'sh', '-c', 'PGPASSWORD="$PASSWORD" psql -h "$HOST" -U "$USER" -d odoo -tAc "select 42"']);
    expect(q.code, show(q)).toBe(0);
    expect(q.stdout.trim()).toBe('42');
  });
});
