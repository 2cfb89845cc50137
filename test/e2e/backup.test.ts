// End to end on a real Docker engine: `tasks backup` of the shipped stack (stand-in images), dump through exec -T,
// filestore owned by uid 101.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeProject, type TestProject } from '../harness/project.ts';
import { describeE2E } from '../harness/e2e.ts';
import { extractArchive, listMembers, readManifest } from '../../scripts/backup/archive.ts';

const docker = inject('docker');
const show = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** `tar -tv --numeric-owner` of a tar file: name -> "uid/gid". */
function owners(tarFile: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of execFileSync('tar', ['-tvf', tarFile, '--numeric-owner'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
    const cols = line.trim().split(/\s+/);
    out[cols.slice(5).join(' ').replace(/^\.\//, '')] = cols[1]!;
  }
  return out;
}

describeE2E('backup of the shipped stack on a real Docker engine', () => {
  let p: TestProject;
  let work = '';
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-e2e-backup-'));
    p = await makeProject({ docker });
    const up = await p.run(['dev']);
    expect(up.code, show(up)).toBe(0);
  });
  afterAll(async () => {
    await p?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('backs up the database through exec -T, the filestore as uid 101, addons; members and manifest check out', async () => {
    // Filestore files written by the application user (uid 101), as Odoo writes attachments.
    const mk = await p.run(
      [
        'shell-odoo',
        '--',
        'sh',
        '-c',
        'mkdir -p /var/lib/odoo/filestore/odoo/3f && printf "%s" "attachment bytes" > /var/lib/odoo/filestore/odoo/3f/3f2a' +
          ' && head -c 200000 /dev/urandom > /var/lib/odoo/filestore/odoo/3f/photo && id -u',
      ],
      {},
    );
    expect(mk.code, show(mk)).toBe(0);
    const who = await p.compose(['exec', '-T', 'odoo', 'sh', '-c', 'stat -c %u:%g /var/lib/odoo/filestore/odoo/3f/3f2a']);
    expect(who.stdout.trim()).toBe('101:101');
    const sql = await p.compose([
      'exec',
      '-T',
      'db',
      'psql',
      '-U',
      p.env.POSTGRES_USER ?? 'odoo',
      '-d',
      p.env.POSTGRES_DB ?? 'odoo',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      "CREATE TABLE e2e_note (id int primary key, body text); INSERT INTO e2e_note SELECT g, 'note ' || g FROM generate_series(1, 500) g;",
    ]);
    expect(sql.code, show(sql)).toBe(0);

    const r = await p.run(['backup']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toMatch(/compose.* exec -T db pg_dump/);
    expect(r.stderr).toMatch(/compose.* exec -T odoo sh -c 'tar "\$@"; .*' sh -C \/var\/lib\/odoo\/filestore -cf - \./);
    const archive = r.stdout.trim();
    expect(fs.statSync(archive).mode & 0o777).toBe(0o600);

    expect((await listMembers(archive)).map((m) => m.name)).toEqual(['manifest.json', 'database.dump', 'filestore.tar', 'addons.tar']);
    const m = await readManifest(archive);
    expect(m.project).toBe(p.name);
    expect(m.serverVersion).toMatch(/^15\./);
    expect(Object.keys(m.images).sort()).toEqual(['db', 'odoo']);
    expect(m.images.db).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(m.parts.find((x) => x.name === 'filestore')).toMatchObject({
      kind: 'volume',
      service: 'odoo',
      path: '/var/lib/odoo/filestore',
      owner: '101:101',
      format: 'tar',
    });

    const out = path.join(work, 'x');
    const ex = await extractArchive(archive, out);
    // The dump through exec -T is a valid custom-format archive: PGDMP header and a full read passes.
    const dump = ex.files.database!;
    expect(fs.readFileSync(dump).subarray(0, 5).toString()).toBe('PGDMP');
    execFileSync('pg_restore', ['-f', '/dev/null', dump]);
    const list = execFileSync('pg_restore', ['-l', dump], { encoding: 'utf8' });
    expect(list).toMatch(/TABLE DATA public e2e_note/);
    // The filestore keeps uid 101 ownership and the bytes.
    const own = owners(ex.files.filestore!);
    expect(own['odoo/3f/3f2a']).toBe('101/101');
    expect(own['odoo/3f/photo']).toBe('101/101');
    const fsDir = path.join(work, 'fs');
    fs.mkdirSync(fsDir);
    execFileSync('tar', ['-xf', ex.files.filestore!, '-C', fsDir]);
    expect(fs.readFileSync(path.join(fsDir, 'odoo/3f/3f2a'), 'utf8')).toBe('attachment bytes');
    expect(fs.statSync(path.join(fsDir, 'odoo/3f/photo')).size).toBe(200000);
  });

  it('with odoo stopped, the filestore volume is read through a one-off container of the service', async () => {
    const stop = await p.compose(['stop', 'odoo']);
    expect(stop.code, show(stop)).toBe(0);
    await new Promise((res) => setTimeout(res, 1100));
    const r = await p.run(['backup', '--only', 'filestore']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toMatch(/odoo is not running: reading \/var\/lib\/odoo\/filestore through a one-off odoo container/);
    const ex = await extractArchive(r.stdout.trim(), path.join(work, 'y'));
    expect(owners(ex.files.filestore!)['odoo/3f/3f2a']).toBe('101/101');
  });
});
