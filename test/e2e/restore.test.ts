// End to end on a real Docker engine (shipped compose files, stand-in images): backup → change → restore puts the
// database and the filestore (hashes, uid 101) back, stopping only the app and only for the swap; an unhealthy app
// after the swap exits 7 with the previous state swapped back (or kept restored with --no-rollback).
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { makeProject, type TestProject } from '../harness/project.ts';
import { describeE2E } from '../harness/e2e.ts';
import { expectOneError } from '../harness/expect.ts';

const docker = inject('docker');
const show = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

interface Container {
  id: string;
  status: string;
  startedAt: string;
  health: string;
}

async function containers(p: TestProject): Promise<Record<string, Container>> {
  const ps = await p.docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${p.name}`]);
  const ids = ps.stdout.split('\n').filter(Boolean);
  const fmt =
    '{{index .Config.Labels "com.docker.compose.service"}}\t{{.Id}}\t{{.State.Status}}\t{{.State.StartedAt}}\t' +
    '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}';
  const r = await p.docker(['inspect', '--format', fmt, ...ids]);
  const out: Record<string, Container> = {};
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [service = '', id = '', status = '', startedAt = '', health = ''] = line.split('\t');
    out[service] = { id, status, startedAt, health };
  }
  return out;
}

async function sh(p: TestProject, service: string, script: string, user?: string): Promise<string> {
  const r = await p.compose(['exec', '-T', ...(user ? ['--user', user] : []), service, 'sh', '-c', script]);
  if (r.code !== 0) throw new Error(`${service}: ${script}\n${show(r)}`);
  return r.stdout;
}

/** sha256 and owner of every file under the filestore of one database. */
const filestore = (p: TestProject, db: string) =>
  sh(
    p,
    'odoo',
    `cd /var/lib/odoo/filestore/${db} && find . -type f -exec sha256sum {} + | sort -k2 && find . -printf '%U:%G %y %p\\n' | sort -k3`,
  );

const sql = (p: TestProject, query: string, db?: string) =>
  sh(p, 'db', `psql -XAtq -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "${db ?? '$POSTGRES_DB'}" -c "${query}"`);

describeE2E('tasks restore on the stand-in stack', () => {
  let p: TestProject;
  let db = '';
  let backup = '';
  let filesAtBackup = '';
  beforeAll(async () => {
    p = await makeProject({ docker, env: { WAIT_TIMEOUT: '45' } });
    db = p.env.POSTGRES_DB ?? 'odoo';
    const up = await p.run(['dev']);
    if (up.code !== 0) throw new Error(`tasks dev failed\n${show(up)}`);
    await sql(
      p,
      'CREATE TABLE partner (id serial primary key, name text); ' +
        'INSERT INTO partner (name) SELECT md5(g::text) FROM generate_series(1, 5000) g',
    );
    // Attachments written by the app itself (uid 101), as Odoo does.
    await sh(
      p,
      'odoo',
      `set -e; d=/var/lib/odoo/filestore/${db}; mkdir -p $d/ab $d/cd; head -c 300000 /dev/urandom > $d/ab/ab01; ` +
        'head -c 5000 /dev/urandom > $d/cd/cd02; echo note > $d/cd/cd03',
    );
    filesAtBackup = await filestore(p, db);
    expect(filesAtBackup).toMatch(/^101:101 f \.\/ab\/ab01$/m);
    const b = await p.run(['backup']);
    if (b.code !== 0) throw new Error(`tasks backup failed\n${show(b)}`);
    backup = b.stdout
      .trim()
      .split('\n')
      .pop()!
      .replace(/^.*\//, '')
      .replace(/\.tar\.gz$/, '');
  }, 600_000);
  afterAll(async () => {
    await p?.cleanup();
  });

  it('puts rows and filestore back (same hashes, uid 101), stopping and starting only the app', async () => {
    await sql(p, 'DELETE FROM partner WHERE id > 1000; CREATE TABLE junk (x int)');
    await sh(p, 'odoo', `set -e; d=/var/lib/odoo/filestore/${db}; echo changed > $d/ab/ab01; rm $d/cd/cd02; echo new > $d/cd/extra`);
    await sh(p, 'odoo', `chown 0:0 /var/lib/odoo/filestore/${db}/cd/cd03`, 'root');
    expect(await filestore(p, db)).not.toBe(filesAtBackup);
    const before = await containers(p);

    const r = await p.run(['restore', backup, '--yes']);
    expect(r.code, show(r)).toBe(0);
    expect(await sql(p, 'SELECT count(*) FROM partner')).toBe('5000\n');
    expect(await sql(p, "SELECT count(*) FROM pg_tables WHERE tablename = 'junk'")).toBe('0\n');
    expect(await filestore(p, db)).toBe(filesAtBackup);
    const after = await containers(p);
    expect(after.odoo!.startedAt).not.toBe(before.odoo!.startedAt);
    expect(after.odoo).toMatchObject({ status: 'running', health: 'healthy' });
    expect(after.db).toEqual(before.db);
    expect(r.stderr).toMatch(/stopping odoo \(the database keeps running\)/);
    expect(r.stderr).toMatch(/safety backup: \S+_backup_\S+/);
    // The app serves while pg_restore loads the side database and the filestore is unpacked beside the live one; it
    // is stopped only for the swap, then started.
    const at = (s: string) => r.stderr.indexOf(s);
    for (const s of ['unpacking filestore', '--exit-on-error', 'stop odoo', 'swapping filestore in', 'up -d'])
      expect(at(s), s).toBeGreaterThan(-1);
    expect(Math.max(at('unpacking filestore'), at('--exit-on-error')), r.stderr).toBeLessThan(at('stop odoo'));
    expect(at('stop odoo')).toBeLessThan(at('swapping filestore in'));
    expect(at('swapping filestore in')).toBeLessThan(at('up -d'));
  });

  it('--as restores into another database and moves the filestore to filestore/<new>', async () => {
    const r = await p.run(['restore', backup, '--yes', '--as', 'copy_db']);
    expect(r.code, show(r)).toBe(0);
    expect(await sql(p, 'SELECT count(*) FROM partner', 'copy_db')).toBe('5000\n');
    expect(await filestore(p, 'copy_db')).toBe(filesAtBackup);
    expect(await filestore(p, db)).toBe(filesAtBackup);
  });

  it('an archive made like the old backup.sh (database.dump, filestore.tar.gz, addons.tar.gz, backup.info) restores, uid 101', async () => {
    const legacy = 'odoo_backup_2025-06-01_02-00-00';
    // Built inside the app container the way backup.sh did it, then copied out with docker cp.
    await sh(
      p,
      'odoo',
      [
        'set -e; rm -rf /tmp/l; mkdir /tmp/l; cd /tmp/l',
        `PGPASSWORD="$PASSWORD" pg_dump -Fc -h "$HOST" -U "$USER" -d ${db} -f database.dump`,
        'tar czf filestore.tar.gz -C /var/lib/odoo filestore',
        'tar czf addons.tar.gz -C /mnt/extra-addons .',
        `printf 'Backup date: 2025-06-01 02:00:00\\nDatabase: ${db}\\n' > backup.info`,
        `tar czf /tmp/${legacy}.tar.gz database.dump filestore.tar.gz addons.tar.gz backup.info`,
      ].join('\n'),
    );
    const id = (await p.compose(['ps', '-q', 'odoo'])).stdout.trim();
    const cp = await p.docker(['cp', `${id}:/tmp/${legacy}.tar.gz`, `${p.dir}/backup/${legacy}.tar.gz`]);
    expect(cp.code, show(cp)).toBe(0);
    const files = await filestore(p, db);
    await sql(p, 'DELETE FROM partner WHERE id % 2 = 0');
    await sh(p, 'odoo', `rm -rf /var/lib/odoo/filestore/${db}/ab`);

    const r = await p.run(['restore', legacy, '--yes', '--no-safety-backup']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toMatch(/old backup\.sh archive/);
    expect(await sql(p, 'SELECT count(*) FROM partner')).toBe('5000\n');
    expect(await filestore(p, db)).toBe(files);
  });

  it('the app failing its health check after the swap: exit 7, the previous database and filestore swapped back', async () => {
    await sql(p, 'DELETE FROM partner WHERE id > 4000');
    await sh(p, 'odoo', `echo since-backup > /var/lib/odoo/filestore/${db}/cd/since`);
    const files = await filestore(p, db);
    await sh(p, 'odoo', 'touch /var/lib/odoo/.standin-unhealthy');
    const r = await p.run(['restore', backup, '--yes'], { timeoutMs: 240_000 });
    expect(r.code, show(r)).toBe(7);
    expectOneError(r, /restored \S+, but the application is unhealthy: .*; swapped back: the previous database and folders are live again/);
    expect(await sql(p, 'SELECT count(*) FROM partner')).toBe('4000\n');
    expect(await filestore(p, db)).toBe(files);
    expect(await sql(p, `SELECT count(*) FROM pg_database WHERE datname LIKE '${db}\\_%'`, 'postgres')).toBe('0\n');
    expect((await containers(p)).odoo!.status).toBe('running');
  });

  it('--no-rollback keeps the restored state when the health check fails, and prints how to swap back', async () => {
    const r = await p.run(['restore', backup, '--yes', '--no-rollback'], { timeoutMs: 240_000 });
    expect(r.code, show(r)).toBe(7);
    expectOneError(r, /restored \S+, but the application is unhealthy: .*; kept \(--no-rollback\)/);
    expect(r.stderr).toMatch(/to swap the previous copies back: stop odoo ; tasks psql -- -d postgres -c 'ALTER DATABASE/);
    expect(await sql(p, 'SELECT count(*) FROM partner')).toBe('5000\n');
    expect(await filestore(p, db)).toBe(filesAtBackup);
    // The previous database is kept under its side name, for the commands the hint prints.
    expect(await sql(p, `SELECT count(*) FROM pg_database WHERE datname LIKE '${db}\\_old\\_%'`, 'postgres')).toBe('1\n');
    await p.compose(['exec', '-T', 'odoo', 'rm', '-f', '/var/lib/odoo/.standin-unhealthy']);
  });
});
