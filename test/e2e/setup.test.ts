// `tasks setup` end to end on a real Docker engine: from a clone with no .env to a healthy stack, and safe to run again.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { makeProject, type TestProject } from '../harness/project.ts';
import { describeE2E } from '../harness/e2e.ts';

const docker = inject('docker');
/** This machine's real crontab (the setup under test writes it; cron-remove takes its block out again). */
const spawnCrontab = () => spawnSync('crontab', ['-l'], { encoding: 'utf8' }).stdout ?? '';
const show = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

async function containerIds(p: TestProject): Promise<string[]> {
  const r = await p.docker(['ps', '-q', '--no-trunc', '--filter', `label=com.docker.compose.project=${p.name}`]);
  return r.stdout.split('\n').filter(Boolean).sort();
}

describeE2E('tasks setup on a fresh clone', () => {
  let p: TestProject;
  // No .env: the settings a server would put in it come from the environment, as on a fresh clone.
  beforeAll(async () => {
    p = await makeProject({ docker, writeEnv: false });
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('writes .env, checks, falls back to the local images when the pull fails, starts, waits healthy and prints the status', async () => {
    expect(fs.existsSync(path.join(p.dir, '.env'))).toBe(false);
    // Cron is left out here: it would write this machine's real crontab (the cron tasks have their own tests).
    const r = await p.run(['setup', '--no-backup', '--no-cron']);
    expect(r.code, show(r)).toBe(0);
    for (const step of ['1/7 environment', '2/7 doctor', '3/7 pull images', '4/7 start and wait until healthy', '7/7 status'])
      expect(r.stderr).toContain(step);
    expect(r.stderr).toContain('skipped (--no-backup)');
    expect(fs.statSync(path.join(p.dir, '.env')).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(p.dir, '.env'), 'utf8')).toMatch(/^POSTGRES_PASSWORD=[A-Za-z0-9_-]{40,}$/m);
    // No registry here: the pull fails, the stand-in images are already present.
    expect(r.stderr).toMatch(/warning: pull failed, using the local images/);
    expect(r.stdout).toMatch(/^db\s+running\s+healthy\s+[0-9a-f]{12}$/m);
    expect(r.stdout).toMatch(/^odoo\s+running\s+healthy\s+[0-9a-f]{12}$/m);
    expect(r.stderr).toContain('setup done');
    const health = await p.run(['health']);
    expect(health.code, show(health)).toBe(0);
  });

  it('a second run keeps .env and the running containers and ends healthy', async () => {
    const envBefore = fs.readFileSync(path.join(p.dir, '.env'), 'utf8');
    const before = await containerIds(p);
    expect(before.length).toBe(2);
    const r = await p.run(['setup', '--no-backup', '--no-cron']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toContain('.env exists: kept as it is');
    expect(fs.readFileSync(path.join(p.dir, '.env'), 'utf8')).toBe(envBefore);
    expect(await containerIds(p)).toEqual(before);
    expect(r.stdout).toMatch(/^odoo\s+running\s+healthy\s+[0-9a-f]{12}$/m);
  });

  it("the full setup installs this project's cron block once and takes the first backup; doctor then sees both", async () => {
    const marker = `# BEGIN ${p.name} tasks`;
    try {
      for (let i = 0; i < 2; i++) {
        const r = await p.run(['setup']);
        expect(r.code, show(r)).toBe(0);
      }
      const crontab = spawnCrontab();
      expect(crontab.split('\n').filter((l) => l === marker)).toHaveLength(1);
      const backups = fs.readdirSync(path.join(p.dir, 'backup')).filter((f) => f.startsWith(`${p.name}_backup_`) && f.endsWith('.tar.gz'));
      expect(backups.length).toBeGreaterThanOrEqual(1);
      const d = await p.run(['doctor', '--json']);
      const report = JSON.parse(d.stdout) as { checks: Array<{ name: string; ok: boolean; status: string; message: string }> };
      const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
      expect(byName.cron?.ok, byName.cron?.message).toBe(true);
      expect(byName.cron?.status).not.toBe('skip');
      expect(byName['last-backup']?.message).toMatch(new RegExp(`^last backup ${p.name}_backup_`));
      expect(byName.disk?.message).toMatch(/twice the last backup is/);
    } finally {
      await p.run(['cron-remove']);
    }
    expect(spawnCrontab()).not.toContain(marker);
  });

  it('stops at the doctor step with its fix when the environment is broken, before touching the stack', async () => {
    const file = path.join(p.dir, '.env');
    const good = fs.readFileSync(file, 'utf8');
    try {
      fs.chmodSync(file, 0o644);
      const r = await p.run(['setup', '--no-backup', '--no-cron']);
      expect(r.code, show(r)).toBe(6);
      expect(r.stderr).toContain('setup stopped: env-permissions: .env readable by other users');
      expect(r.stderr).toContain('chmod 600 .env');
      expect(r.stderr).not.toContain('3/7 pull images');
    } finally {
      fs.writeFileSync(file, good);
      fs.chmodSync(file, 0o600);
    }
  });
});
