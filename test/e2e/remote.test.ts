// End to end against a remote engine (DOCKER_HOST=ssh://<alias>, a second dockerd reached over SSH: see
// test/harness/remote-engine.ts), for every task a user runs there: one stack brought up once, the tasks in order.
// The containers must run on the remote engine and none on this machine's. The "remote" host shares this machine's
// filesystem, so where it matters (the addons folder, a host path in the backup) the client gets its own, empty view of
// it (a private mount namespace): what ends up in the backup or on disk must have gone through the engine's host.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exec, makeProject, type TestProject } from '../harness/project.ts';
import { describeE2E } from '../harness/e2e.ts';
import { extractArchive, listMembers } from '../../scripts/backup/archive.ts';

const docker = inject('docker');
const show = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

const COUNTS = `SELECT string_agg(t || '=' || n, ' ' ORDER BY t) FROM (
  SELECT 'partners' t, count(*) n FROM res_partner UNION ALL
  SELECT 'products', count(*) FROM product_product UNION ALL
  SELECT 'orders', count(*) FROM sale_order UNION ALL
  SELECT 'lines', count(*) FROM sale_order_line) x`;
const SEEDED = 'lines=16 orders=8 partners=16 products=10';

interface Container {
  id: string;
  status: string;
  startedAt: string;
  health: string;
}

/** This machine's own engine: the runner's environment without the target's DOCKER_HOST / DOCKER_CONFIG. */
function localEnv(): NodeJS.ProcessEnv {
  const e = { ...process.env };
  delete e.DOCKER_HOST;
  delete e.DOCKER_CONTEXT;
  return e;
}

async function ids(p: TestProject, what: 'ps' | 'volume', where: 'remote' | 'local'): Promise<string[]> {
  const args = [...(what === 'ps' ? ['ps', '-aq'] : ['volume', 'ls', '-q']), '--filter', `label=com.docker.compose.project=${p.name}`];
  const r = where === 'remote' ? await p.docker(args) : await exec(['docker', ...args], { env: localEnv() });
  expect(r.code, show(r)).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

/** Containers of the project on the remote engine, by service; and the check that this machine's engine has none. */
async function containers(p: TestProject): Promise<Record<string, Container>> {
  expect(await ids(p, 'ps', 'local'), 'containers of the project on the LOCAL engine').toEqual([]);
  expect(await ids(p, 'volume', 'local'), 'volumes of the project on the LOCAL engine').toEqual([]);
  const list = await ids(p, 'ps', 'remote');
  if (!list.length) return {};
  const fmt =
    '{{index .Config.Labels "com.docker.compose.service"}}\t{{.Id}}\t{{.State.Status}}\t{{.State.StartedAt}}\t' +
    '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}';
  const r = await p.docker(['inspect', '--format', fmt, ...list]);
  const out: Record<string, Container> = {};
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [service = '', id = '', status = '', startedAt = '', health = ''] = line.split('\t');
    out[service] = { id, status, startedAt, health };
  }
  return out;
}

describeE2E('every task against a remote engine over SSH', () => {
  let p: TestProject;
  let addons = '';
  let backupName = '';
  const work = () => path.join(p.dir, '.e2e-work');
  /** Runs the CLI as a client whose addons/ is an empty folder of its own (the server keeps the real one). */
  const clientWithoutAddons = () => [
    'unshare',
    '-m',
    '--propagation',
    'private',
    'sh',
    '-c',
    'mount -t tmpfs tmpfs "$0" && exec "$@"',
    addons,
  ];
  const query = async (sql: string) => {
    const r = await p.run(['psql', '--', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
    expect(r.code, show(r)).toBe(0);
    return r.stdout.trim();
  };
  const sh = async (service: string, script: string) => {
    const r = await p.run([`shell-${service}`, '--', 'sh', '-c', script]);
    expect(r.code, show(r)).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    expect(docker.remote, 'this file runs against the remote engine targets only').toBe(true);
    expect(docker.env?.DOCKER_HOST).toMatch(/^ssh:\/\//);
    p = await makeProject({ docker });
    addons = path.join(p.dir, 'addons');
    fs.mkdirSync(work(), { recursive: true });
    // The server's addons (the engine's host sees this folder; the client, where it matters, an empty one).
    fs.mkdirSync(path.join(addons, 'ct_remote_addon'), { recursive: true });
    fs.writeFileSync(path.join(addons, 'ct_remote_addon/__manifest__.py'), "{'name': 'CT remote addon', 'version': '17.0.1'}\n");
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('`dev` starts the stack on the remote engine (none of it on this machine) and prints URLs on the engine host', async () => {
    const r = await p.run(['dev']);
    expect(r.code, show(r)).toBe(0);
    const c = await containers(p);
    expect(c.db).toMatchObject({ status: 'running', health: 'healthy' });
    expect(c.odoo).toMatchObject({ status: 'running', health: 'healthy' });
    // localhost would be this machine: the published port is on the engine's host.
    expect(r.stdout).toContain(`Odoo: http://${docker.remoteHost}:${p.env.ODOO_PORT}`);
    expect(r.stdout).not.toMatch(/localhost|127\.0\.0\.1/);
    expect((await ids(p, 'volume', 'remote')).sort()).toEqual([`${p.name}_db-data`, `${p.name}_odoo-data`]);
  });

  it('`status` lists both services running and healthy', async () => {
    const r = await p.run(['status']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/^db\s+running\s+healthy\s+[0-9a-f]{12}$/m);
    expect(r.stdout).toMatch(/^odoo\s+running\s+healthy\s+[0-9a-f]{12}$/m);
  });

  it('`logs` prints both services, `logs-odoo` only the application', async () => {
    const all = await p.run(['logs']);
    expect(all.code, show(all)).toBe(0);
    expect(all.stdout).toContain('odoo.standin: HTTP service');
    expect(all.stdout).toContain('database system is ready');
    const odoo = await p.run(['logs-odoo']);
    expect(odoo.code, show(odoo)).toBe(0);
    expect(odoo.stdout).toContain('odoo.standin: HTTP service');
    expect(odoo.stdout).not.toContain('database system is ready');
  });

  it('`shell-db -- psql …` and `shell-odoo -- id -u` run in the remote containers; exit codes pass through', async () => {
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
    expect(r.stderr).toContain('exec -T db psql');
    expect((await sh('odoo', 'id -u')).trim()).toBe('101');
    const bad = await p.run(['shell-db', '--', 'psql', '-U', p.env.POSTGRES_USER ?? 'odoo', '-d', 'no_such_database', '-c', 'select 1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no_such_database');
  });

  it('`odoo-restart` restarts odoo only; `odoo-rebuild` recreates it and waits until healthy; db untouched', async () => {
    const before = await containers(p);
    const r = await p.run(['odoo-restart']);
    expect(r.code, show(r)).toBe(0);
    const mid = await containers(p);
    expect(mid.odoo!.id).toBe(before.odoo!.id);
    expect(mid.odoo!.startedAt).not.toBe(before.odoo!.startedAt);
    expect(mid.db).toEqual(before.db);
    const b = await p.run(['odoo-rebuild']);
    expect(b.code, show(b)).toBe(0);
    const after = await containers(p);
    expect(after.odoo!.id).not.toBe(before.odoo!.id);
    expect(after.odoo).toMatchObject({ status: 'running', health: 'healthy' });
    expect(after.db).toEqual(before.db);
  });

  it('`migrate` (a one-off odoo container) and `seed` load the data; `psql -- -c "select 1"` answers', async () => {
    const m = await p.run(['migrate']);
    expect(m.code, show(m)).toBe(0);
    expect(m.stderr).toMatch(/run --rm -T odoo odoo --database=\S+ --update=all --stop-after-init/);
    const s = await p.run(['seed']);
    expect(s.code, show(s)).toBe(0);
    expect(await query(COUNTS)).toBe(SEEDED);
    const one = await p.run(['psql', '--', '-XAt', '-c', 'select 1']);
    expect(one.code, show(one)).toBe(0);
    expect(one.stdout.trim()).toBe('1');
    // The one-off migrate container is gone, and nothing ran here.
    expect(Object.keys(await containers(p)).sort()).toEqual(['db', 'odoo']);
  });

  it('`db-export` writes the dump on this machine; `db-import` loads it back into the remote database', async () => {
    await query(`INSERT INTO res_partner (name, ref, type, is_company, active) VALUES ('Remote Marker', 'R-1', 'contact', true, true)`);
    const e = await p.run(['db-export', 'backup/remote.dump']);
    expect(e.code, show(e)).toBe(0);
    const file = path.join(p.dir, 'backup/remote.dump');
    expect(fs.readFileSync(file).subarray(0, 5).toString()).toBe('PGDMP');
    await query(`DELETE FROM sale_order_line`);
    const i = await p.run(['db-import', 'backup/remote.dump', '--yes']);
    expect(i.code, show(i)).toBe(0);
    expect(await query(COUNTS)).toBe('lines=16 orders=8 partners=17 products=10');
  });

  it('`backup` reads the database, the filestore and the addons folder ON the engine host (the client has no addons)', async () => {
    await sh('odoo', 'd=/var/lib/odoo/filestore/odoo/ab; mkdir -p $d && printf "%s" "remote attachment" > $d/ab01');
    const r = await p.run(['backup'], { prefix: clientWithoutAddons() });
    expect(r.code, show(r)).toBe(0);
    const archive = r.stdout.trim().split('\n').pop()!;
    expect(archive.startsWith(path.join(p.dir, 'backup'))).toBe(true);
    backupName = path.basename(archive).replace(/\.tar\.gz$/, '');
    expect((await listMembers(archive)).map((m) => m.name)).toEqual(['manifest.json', 'database.dump', 'filestore.tar', 'addons.tar']);
    const ex = await extractArchive(archive, path.join(work(), 'x'));
    const addonFiles = execFileSync('tar', ['-tf', ex.files.addons!], { encoding: 'utf8' });
    expect(addonFiles).toMatch(/^(\.\/)?ct_remote_addon\/__manifest__\.py$/m);
    const fsFiles = execFileSync('tar', ['-tf', ex.files.filestore!], { encoding: 'utf8' });
    expect(fsFiles).toMatch(/^(\.\/)?odoo\/ab\/ab01$/m);
    await containers(p);
  });

  it('`restore --yes` puts the database, the filestore and the addons back on the engine host', async () => {
    await query(`DELETE FROM res_partner WHERE ref = 'R-1'`);
    await sh('odoo', 'rm -rf /var/lib/odoo/filestore/odoo/ab');
    fs.rmSync(path.join(addons, 'ct_remote_addon'), { recursive: true, force: true });
    const before = await containers(p);
    const r = await p.run(['restore', backupName, '--yes'], { prefix: clientWithoutAddons() });
    expect(r.code, show(r)).toBe(0);
    expect(await query(`SELECT count(*) FROM res_partner WHERE ref = 'R-1'`)).toBe('1');
    expect((await sh('odoo', 'cat /var/lib/odoo/filestore/odoo/ab/ab01')).trim()).toBe('remote attachment');
    // Written by the engine's host into the server's folder (the client's view of it was an empty tmpfs).
    expect(fs.readFileSync(path.join(addons, 'ct_remote_addon/__manifest__.py'), 'utf8')).toContain('CT remote addon');
    const after = await containers(p);
    expect(after.db).toEqual(before.db);
    expect(after.odoo).toMatchObject({ status: 'running', health: 'healthy' });
  });

  // Flavour-specific: registered only for the target it is about (not a skip: there is nothing to test on the other).
  const onlyFor = (cmd: string) => (docker.composeCmd === cmd ? it : () => undefined);

  onlyFor('docker-compose')('Compose v1 over ssh:// without python3-paramiko is refused with one clear line (no traceback)', async () => {
    // A paramiko that cannot be imported, first on the Python path: what a machine without python3-paramiko has.
    const shadow = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-no-paramiko-'));
    try {
      fs.mkdirSync(path.join(shadow, 'paramiko'));
      fs.writeFileSync(path.join(shadow, 'paramiko/__init__.py'), 'raise ImportError("No module named \'paramiko\'")\n');
      const r = await p.run(['status'], { env: { PYTHONPATH: shadow } });
      expect(r.code, show(r)).toBe(6);
      expect(r.stderr).toMatch(/paramiko/);
      expect(r.stderr).not.toMatch(/Traceback/);
    } finally {
      fs.rmSync(shadow, { recursive: true, force: true });
    }
  });

  onlyFor('docker compose')('the compose flavour found for one DOCKER_CONFIG is not reused for another (no COMPOSE_CMD set)', async () => {
    const file = path.join(p.dir, '.env');
    const text = fs.readFileSync(file, 'utf8');
    const noPlugin = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-docker-config-empty-'));
    try {
      fs.writeFileSync(file, text.replace(/^COMPOSE_CMD=.*\n/m, ''));
      // `--dry-run down` shows the compose command it would run (and runs none).
      const v2 = await p.run(['--dry-run', 'down']);
      expect(v2.code, show(v2)).toBe(0);
      expect(v2.stderr).toMatch(/\$ docker compose /);
      // The same project, now with a docker config folder that has no compose plugin: v1 it is.
      const env = { DOCKER_CONFIG: noPlugin };
      const v1 = await p.run(['--dry-run', 'down'], { env });
      expect(v1.code, show(v1)).toBe(0);
      expect(v1.stderr).toMatch(/\$ docker-compose /);
      const status = await p.run(['status'], { env });
      expect(status.code, show(status)).toBe(0);
      expect(status.stdout).toMatch(/^odoo\s+running\s+healthy\s+[0-9a-f]{12}$/m);
    } finally {
      fs.writeFileSync(file, text);
      fs.rmSync(noPlugin, { recursive: true, force: true });
    }
  });

  it('`down` removes the containers from the remote engine and keeps its volumes', async () => {
    const r = await p.run(['down']);
    expect(r.code, show(r)).toBe(0);
    expect(await containers(p)).toEqual({});
    expect((await ids(p, 'volume', 'remote')).sort()).toEqual([`${p.name}_db-data`, `${p.name}_odoo-data`]);
  });
});
