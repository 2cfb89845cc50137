// --dry-run with no engine (DOCKER_HOST on a dead socket) through the real CLI: a read-only probe that cannot run says
// what it would have read ("[dry-run] <fact>: unknown (<why>)") and the plan goes on; closing messages say "would";
// nothing is changed. No Docker needed. The crontab is a fake on PATH (a file in the project): the real one is never read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makeProject, type RunOptions, type TestProject } from '../harness/project.ts';

const projects: TestProject[] = [];
afterAll(async () => {
  for (const p of projects) await p.cleanup();
});

/** `crontab` that keeps the table in $FAKE_CRONTAB and refuses to run without it; `-l` fails when FAKE_CRONTAB_FAIL is set. */
const FAKE_CRONTAB = `#!/bin/sh
f="\${FAKE_CRONTAB:?}"
if [ "$1" = -l ] && [ -n "$FAKE_CRONTAB_FAIL" ]; then echo "$FAKE_CRONTAB_FAIL" >&2; exit 1; fi
case "$1" in
  -l) if [ -f "$f" ]; then cat "$f"; else echo "no crontab for user" >&2; exit 1; fi ;;
  -r) rm -f "$f" ;;
  *) cat > "$f" ;;
esac
`;

let p: TestProject;
let dryEnv: Record<string, string>;
const dry = (args: string[], o: RunOptions = {}) => p.run([...args, '--dry-run'], { ...o, env: { ...dryEnv, ...o.env } });

/**
 * Every file in the project folder and a hash of its contents: a dry run must leave it as it was. Not node_modules,
 * nor .cache (the CLI's own caches: the bundled tasks.ts, the detected compose flavor).
 */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    if (f.startsWith('node_modules') || f.startsWith('.cache')) continue;
    const full = path.join(dir, f);
    const st = fs.lstatSync(full);
    out[f] = st.isFile() ? crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex') : st.isDirectory() ? 'dir' : 'other';
  }
  return out;
}

beforeAll(async () => {
  p = await makeProject();
  projects.push(p);
  const bin = path.join(p.dir, 'fakebin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'crontab'), FAKE_CRONTAB, { mode: 0o755 });
  // A custom-format dump's magic, then bytes: it is read by pg_restore in the db container, which is not there.
  fs.writeFileSync(path.join(p.dir, 'x.dump'), Buffer.concat([Buffer.from('PGDMP\x01\x0e\x00'), Buffer.alloc(200, 7)]));
  dryEnv = {
    DOCKER_HOST: `unix://${p.dir}/no-engine.sock`,
    PATH: `${bin}:${process.env.PATH}`,
    FAKE_CRONTAB: path.join(p.dir, 'crontab.txt'),
  };
});

const ENGINE_DOWN = 'unknown (the Docker engine is not running)';

describe('--dry-run with the engine down', () => {
  it('reset-db (the example of the docs) shows its whole plan: server version unknown, drop, create, migrate, seed', async () => {
    const before = snapshot(p.dir);
    const r = await dry(['reset-db', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`[dry-run] PostgreSQL server version: ${ENGINE_DOWN}\n`);
    expect(r.stderr).toMatch(/\[dry-run\] \$ docker(-compose| compose) .* exec -T db psql .*DROP DATABASE IF EXISTS "odoo" WITH \(FORCE\)/);
    expect(r.stderr).toMatch(/\[dry-run\] \$ docker(-compose| compose) .* exec -T db psql .*CREATE DATABASE "odoo" OWNER "odoo"/);
    expect(r.stderr).toContain('[dry-run] would apply the migrations (the odoo command above)');
    expect(r.stderr).toContain('[dry-run] would seed odoo: 3 files');
    expect(r.stderr).toContain('[dry-run] would have reset odoo');
    expect(r.stderr).not.toMatch(/odoo was reset|seeded odoo|migrations applied/);
    expect(snapshot(p.dir)).toEqual(before);
  });

  it('backup prints its plan step by step in order, the versions and the state of odoo unknown; nothing is written', async () => {
    const before = snapshot(p.dir);
    const r = await dry(['backup']);
    expect(r.code, r.stderr).toBe(0);
    const steps = [...r.stderr.matchAll(/^\[dry-run\] step (\d+)\/(\d+): (.+)$/gm)].map((m) => `${m[1]}/${m[2]} ${m[3]}`);
    expect(steps).toEqual(['1/7 check', '2/7 dump parts', '3/7 write archive', '4/7 verify', '5/7 publish', '6/7 upload', '7/7 prune']);
    expect(r.stderr).toContain(`[dry-run] PostgreSQL server version: ${ENGINE_DOWN}\n`);
    expect(r.stderr).toContain(`[dry-run] pg_dump version: ${ENGINE_DOWN}\n`);
    expect(r.stderr).toContain(`[dry-run] whether odoo runs: ${ENGINE_DOWN}\n`);
    expect(r.stderr).not.toContain('odoo is not running');
    // The commands of each step come after its line: the dump and the tars under 'dump parts'.
    const at = (s: string) => r.stderr.indexOf(s);
    expect(at('step 1/7')).toBeLessThan(at('version: unknown'));
    expect(at('step 2/7')).toBeLessThan(at(' exec -T db pg_dump '));
    expect(at(' exec -T db pg_dump ')).toBeLessThan(at('step 3/7'));
    expect(r.stderr).toMatch(/\[dry-run\] \$ tar -C \S+\/addons -cf - \. > \S+\/backup\/\.tmp-\S+\/addons\.tar/);
    expect(r.stderr).toMatch(
      /\[dry-run\] \$ docker(-compose| compose) .* run --rm -T --no-deps .* odoo -c .* -C \/var\/lib\/odoo\/filestore -cf - \./,
    );
    expect(r.stderr).toMatch(
      /\[dry-run\] would write \S+\.tar\.gz \(manifest\.json \+ database\.dump, filestore\.tar, addons\.tar\), check it and prune/,
    );
    expect(snapshot(p.dir)).toEqual(before);
    expect(fs.existsSync(path.join(p.dir, 'backup'))).toBe(false);
  });

  it('seed and migrate print their commands and say "would", not "seeded" / "applied"', async () => {
    const seed = await dry(['seed']);
    expect(seed.code, seed.stderr).toBe(0);
    expect(seed.stderr).toMatch(/\[dry-run\] \$ .* exec -T db psql .*--single-transaction .* < \S+\/seeds\/01_customers\.sql/);
    expect(seed.stderr).toContain('[dry-run] would seed odoo: 3 files\n');
    expect(seed.stderr).not.toContain('seeded odoo');
    const migrate = await dry(['migrate']);
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(migrate.stderr).toMatch(/\[dry-run\] \$ .* run --rm -T odoo odoo --database=odoo --update=all/);
    expect(migrate.stderr).toContain('[dry-run] would apply the migrations (the odoo command above)\n');
    expect(migrate.stderr).not.toContain('migrations applied');
  });

  it('migrate with SQL migration files: the applied ones are unknown, so every file is shown as pending', async () => {
    const q = await makeProject();
    projects.push(q);
    const tasksTs = path.join(q.dir, 'tasks.ts');
    const text = fs
      .readFileSync(tasksTs, 'utf8')
      .replace(/\n {2}migrate: \{ service: 'odoo'.*\n/, "\n  migrate: { kind: 'sqlMigrations', dir: 'migrations' },\n");
    fs.writeFileSync(tasksTs, text);
    fs.mkdirSync(path.join(q.dir, 'migrations'));
    fs.writeFileSync(path.join(q.dir, 'migrations/001_first.sql'), 'CREATE TABLE first (id int);\n');
    const r = await q.run(['migrate', '--dry-run'], { env: dryEnv });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`[dry-run] the migrations applied (schema_migrations): ${ENGINE_DOWN}\n`);
    expect(r.stderr).toContain('applying migrations/001_first.sql');
    expect(r.stderr).toMatch(/\[dry-run\] \$ .* exec -T db psql .*INSERT INTO schema_migrations .* < \S+\/migrations\/001_first\.sql/);
  });

  it('db-import: the server, the dump and the target are unknown; the import plan is shown, the dump not called corrupt', async () => {
    const r = await dry(['db-import', 'x.dump', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`[dry-run] PostgreSQL server version: ${ENGINE_DOWN}\n`);
    expect(r.stderr).toContain(`[dry-run] the versions in x.dump: ${ENGINE_DOWN}\n`);
    expect(r.stderr).toContain(`[dry-run] whether database odoo exists: ${ENGINE_DOWN}\n`);
    expect(r.stderr).not.toContain('corrupt');
    expect(r.stderr).toMatch(/\[dry-run\] \$ .* exec -T db pg_restore .* < \S+\/x\.dump/);
    expect(r.stderr).toContain('[dry-run] would have imported x.dump into odoo\n');
  });

  it('cron-install: a crontab that cannot be read is unknown, the block is shown as "would have installed"; nothing written', async () => {
    const tab = path.join(p.dir, 'crontab.txt');
    fs.writeFileSync(tab, '# mine\n0 1 * * * true\n');
    const failing = await dry(['cron-install'], { env: { FAKE_CRONTAB_FAIL: "crontab: your UID isn't in the passwd file." } });
    expect(failing.code, failing.stderr).toBe(0);
    expect(failing.stderr).toContain("[dry-run] your crontab: unknown (crontab -l failed: crontab: your UID isn't in the passwd file.)\n");
    expect(failing.stderr).toContain(`[dry-run] would have installed this block in your crontab:\n# BEGIN ${p.name} tasks\n`);
    const readable = await dry(['cron-install']);
    expect(readable.code, readable.stderr).toBe(0);
    expect(readable.stderr).toContain('[dry-run] $ crontab -\n');
    expect(readable.stderr).toContain('[dry-run] would have installed this block in your crontab:');
    expect(readable.stderr).not.toMatch(/^(\[\S+\] )?installed in your crontab/m);
    expect(fs.readFileSync(tab, 'utf8')).toBe('# mine\n0 1 * * * true\n');
    expect(fs.existsSync(path.join(p.dir, 'backup'))).toBe(false);
  });

  it('dev and env-init on a fresh clone: "would write .env", "nothing was started"; no .env is written', async () => {
    const q = await makeProject({ writeEnv: false });
    projects.push(q);
    const init = await q.run(['env-init', '--dry-run'], { env: dryEnv });
    expect(init.code, init.stderr).toBe(0);
    expect(init.stderr).toContain(
      '[dry-run] would write .env from .env.template with generated secrets (mode 0600) for APP_ENV=development',
    );
    expect(init.stderr).not.toContain('wrote .env');
    expect(fs.existsSync(path.join(q.dir, '.env'))).toBe(false);
    const dev = await q.run(['dev', '--dry-run'], { env: dryEnv });
    expect(dev.code, dev.stderr).toBe(0);
    expect(dev.stderr).toContain('[dry-run] would write .env from .env.template with generated secrets');
    expect(dev.stderr).toMatch(/\[dry-run\] \$ docker(-compose| compose) .* up -d/);
    expect(dev.stderr).toContain('[dry-run] nothing was started; once up and healthy, the stack answers at:');
    expect(dev.stderr).not.toContain('is up and healthy');
    expect(fs.existsSync(path.join(q.dir, '.env'))).toBe(false);
  });
});

describe('restore --dry-run with the engine down', () => {
  it('prints the eleven steps and the commands the real run would use; says what it could not read; changes nothing', async () => {
    const { writeArchive } = await import('../../scripts/backup/archive.ts');
    const { MANIFEST_FORMAT } = await import('../../scripts/backup/manifest.ts');
    const { spawnSync } = await import('node:child_process');
    const work = fs.mkdtempSync(path.join(p.dir, '..', 'ct-dryarchive-'));
    const dump = path.join(p.dir, 'x.dump');
    const addonsTar = path.join(work, 'addons.tar');
    fs.mkdirSync(path.join(work, 'src', 'my_module'), { recursive: true });
    fs.writeFileSync(path.join(work, 'src', 'my_module', '__manifest__.py'), "{'name': 'from the backup'}\n");
    expect(spawnSync('tar', ['-cf', addonsTar, '-C', path.join(work, 'src'), '.']).status).toBe(0);
    const part = (name: string, kind: 'database' | 'path', file: string, src: string) => ({
      name,
      kind,
      file,
      format: kind === 'database' ? 'pg_dump-custom' : 'tar',
      ...(kind === 'path' ? { path: 'addons' } : {}),
      size: fs.statSync(src).size,
      sha256: crypto.createHash('sha256').update(fs.readFileSync(src)).digest('hex'),
    });
    const name = `${p.name}_backup_2026-04-01_00-00-00`;
    const manifest = {
      format: MANIFEST_FORMAT,
      version: 1,
      name,
      createdAt: '2026-04-01T00:00:00.000Z',
      appEnv: 'development',
      project: p.name,
      database: 'odoo',
      serverVersion: '15.0',
      images: {},
      tool: { name: 'compose-tasks', version: 'test' },
      reason: 'manual',
      parts: [part('database', 'database', 'database.dump', dump), part('addons', 'path', 'addons.tar', addonsTar)],
    };
    fs.mkdirSync(path.join(p.dir, 'backup'), { recursive: true });
    await writeArchive(path.join(p.dir, 'backup', `${name}.tar.gz`), [
      { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)), level: 1 },
      { name: 'database.dump', file: dump, level: 0 },
      { name: 'addons.tar', file: addonsTar, level: 0 },
    ]);
    fs.rmSync(work, { recursive: true, force: true });
    const before = snapshot(p.dir);
    const r = await dry(['restore', name, '--only', 'db,addons', '--jobs', '1', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect([...r.stderr.matchAll(/\[dry-run\] step (\d+)\/11: /g)].map((m) => Number(m[1]))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(r.stderr).toContain(`[dry-run] whether database odoo exists: ${ENGINE_DOWN}\n`);
    expect(r.stderr).toMatch(/\[dry-run\] \$ docker(-compose| compose) .* stop odoo/);
    expect(r.stderr).toMatch(/\[dry-run\] \$ docker(-compose| compose) .* exec -T db pg_restore .*odoo_restore_\d{14}/);
    expect(r.stderr).toMatch(/\[dry-run\] \$ .*ALTER DATABASE "odoo" RENAME TO "odoo_old_\d{14}"/);
    expect(r.stderr).toContain(`[dry-run] would restore ${name} into odoo`);
    expect(r.stderr).not.toMatch(/^.*\brestored\b/m);
    expect(snapshot(p.dir)).toEqual(before);
  });
});
