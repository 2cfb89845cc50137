// End to end on a real Docker engine: the second stack (examples/web-api: api built from its own context, frontend, db),
// driven from the example's folder with `npx tsx tasks.ts` as its README says, with stand-in images built locally.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { describeE2E } from '../harness/e2e.ts';
import { makeWebApiProject, type WebApiProject } from '../harness/webapi.ts';

const docker = inject('docker');
const show = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

interface Container {
  id: string;
  startedAt: string;
  status: string;
}

async function containers(p: WebApiProject): Promise<Record<string, Container>> {
  const ps = await p.docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${p.name}`]);
  const ids = ps.stdout.split('\n').filter(Boolean);
  if (!ids.length) return {};
  const r = await p.docker([
    'inspect',
    '--format',
    '{{index .Config.Labels "com.docker.compose.service"}}\t{{.Id}}\t{{.State.StartedAt}}\t{{.State.Status}}',
    ...ids,
  ]);
  const out: Record<string, Container> = {};
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const [service = '', id = '', startedAt = '', status = ''] = line.split('\t');
    if (!/^\w+$/.test(service) || status === 'exited') continue;
    out[service] = { id, startedAt, status };
  }
  return out;
}

describeE2E('the web-api example (api, frontend, db) on a real Docker engine', () => {
  let p: WebApiProject;
  const sql = async (q: string) => {
    const r = await p.compose(['exec', '-T', 'db', 'psql', '-XAtq', '-U', 'app', '-d', 'app', '-c', q]);
    if (r.code !== 0) throw new Error(show(r));
    return r.stdout.trim();
  };
  beforeAll(async () => {
    p = await makeWebApiProject(docker);
    const up = await p.run(['dev'], { timeoutMs: 400_000 });
    if (up.code !== 0) throw new Error(`tasks dev failed\n${show(up)}`);
    expect(up.stdout).toContain(`API: http://localhost:${p.env.API_PORT}`);
  }, 600_000);
  afterAll(async () => {
    await p?.cleanup();
  });

  it('`--list` from the example folder lists its own per-service targets (api, frontend, db)', async () => {
    const r = await p.run(['--list']);
    expect(r.code, show(r)).toBe(0);
    for (const t of ['shell-api', 'logs-api', 'api-rebuild', 'frontend-restart', 'shell-db', 'api-health'])
      expect(r.stdout).toContain(`  ${t} `);
    expect(r.stdout).not.toContain('odoo');
  });

  it('the frontend answers on its published port; shell-api -- <cmd> runs in the api container', async () => {
    const res = await fetch(`http://127.0.0.1:${p.env.FRONTEND_PORT}/`);
    expect(await res.text()).toContain('<title>frontend</title>');
    const r = await p.run(['shell-api', '--', 'cat', '/app/www/version']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout.trim()).toBe('v1');
    const who = await p.run(['shell-api', '--', 'id', '-u']);
    expect(who.stdout.trim()).toBe('1000');
  });

  it('logs-api shows the api only', async () => {
    await fetch(`http://127.0.0.1:${p.env.API_PORT}/health`);
    const r = await p.run(['logs-api']);
    expect(r.code, show(r)).toBe(0);
    const out = r.stdout + r.stderr;
    expect(out).toContain('api listening on 3000 (v1)');
    expect(out).not.toContain('frontend listening');
  });

  it('api-rebuild builds the api from its local context and recreates only it; frontend-restart restarts only the frontend', async () => {
    fs.writeFileSync(path.join(p.dir, 'api/VERSION'), 'v2\n');
    const before = await containers(p);
    const r = await p.run(['api-rebuild'], { timeoutMs: 300_000 });
    expect(r.code, show(r)).toBe(0);
    const after = await containers(p);
    expect(after.api!.id).not.toBe(before.api!.id);
    expect(after.db).toEqual(before.db);
    expect(after.frontend).toEqual(before.frontend);
    const version = await fetch(`http://127.0.0.1:${p.env.API_PORT}/version`);
    expect((await version.text()).trim()).toBe('v2');

    const fr = await p.run(['frontend-restart']);
    expect(fr.code, show(fr)).toBe(0);
    const restarted = await containers(p);
    expect(restarted.frontend!.id).toBe(after.frontend!.id);
    expect(restarted.frontend!.startedAt).not.toBe(after.frontend!.startedAt);
    expect(restarted.api).toEqual(after.api);
    expect(restarted.db).toEqual(after.db);
  });

  it('migrate applies migrations/*.sql once (recorded), a second run applies nothing, a changed file is refused', async () => {
    const r = await p.run(['migrate']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toContain('applied 2 migrations to app');
    expect(await sql('SELECT version, name FROM schema_migrations ORDER BY 1')).toBe('1|create_users\n2|create_posts');
    const again = await p.run(['migrate']);
    expect(again.code, show(again)).toBe(0);
    expect(again.stderr).toContain('nothing to do');
    const file = path.join(p.dir, 'migrations/002_create_posts.sql');
    const text = fs.readFileSync(file, 'utf8');
    fs.appendFileSync(file, 'ALTER TABLE posts ADD COLUMN slug text;\n');
    try {
      const changed = await p.run(['migrate']);
      expect(changed.code, show(changed)).toBe(3);
      expect(changed.stderr).toMatch(/002_create_posts\.sql was changed after it was applied/);
      expect(await sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'posts' AND column_name = 'slug'")).toBe('0');
    } finally {
      fs.writeFileSync(file, text);
    }
  });

  it('seed is refused with APP_ENV=production and loads the fixtures in development', async () => {
    const prod = await p.run(['seed'], { env: { APP_ENV: 'production' } });
    expect(prod.code, show(prod)).toBe(3);
    expect(prod.stderr).toContain('seed refuses to run in production');
    expect(await sql('SELECT count(*) FROM users')).toBe('0');
    const r = await p.run(['seed']);
    expect(r.code, show(r)).toBe(0);
    expect(await sql('SELECT count(*) FROM users')).toBe('2');
    expect(await sql('SELECT count(*) FROM posts')).toBe('2');
  });

  it('backup holds the database and the uploads volume; restore puts both back and the stack is healthy', async () => {
    const put = await p.run(['shell-api', '--', 'sh', '-c', 'echo avatar-bytes > /app/uploads/avatar.png']);
    expect(put.code, show(put)).toBe(0);
    const b = await p.run(['backup'], { timeoutMs: 300_000 });
    expect(b.code, show(b)).toBe(0);
    const archive = b.stdout.trim().split('\n').pop()!;
    expect(archive).toMatch(new RegExp(`examples/web-api/backup/${p.name}_backup_.*\\.tar\\.gz$`));
    expect(fs.existsSync(archive)).toBe(true);
    expect(b.stderr).toMatch(/uploads: /);

    await sql("DELETE FROM posts; DELETE FROM users WHERE email = 'ada@example.com'");
    const edit = await p.run(['shell-api', '--', 'sh', '-c', 'echo changed > /app/uploads/avatar.png']);
    expect(edit.code, show(edit)).toBe(0);

    const name = path.basename(archive).replace(/\.tar\.gz$/, '');
    const r = await p.run(['restore', name, '--yes'], { timeoutMs: 300_000 });
    expect(r.code, show(r)).toBe(0);
    expect(await sql('SELECT count(*) FROM users')).toBe('2');
    expect(await sql('SELECT count(*) FROM posts')).toBe('2');
    expect(await sql('SELECT count(*) FROM schema_migrations')).toBe('2');
    const file = await p.compose(['exec', '-T', 'api', 'sh', '-c', 'cat /app/uploads/avatar.png; stat -c %u:%g /app/uploads/avatar.png']);
    expect(file.stdout.trim().split('\n')).toEqual(['avatar-bytes', '1000:1000']);
    const health = await p.run(['health']);
    expect(health.code, show(health)).toBe(0);
  });
});
