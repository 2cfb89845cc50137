// End to end: adopting an existing compose project with COMPOSE_FILE. The project directory follows compose's own rule
// (the first file's folder), so build contexts, env_file, secrets and bind mounts resolve as `docker compose` resolves them.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describeE2E } from '../harness/e2e.ts';
import { makeProject, type TestProject } from '../harness/project.ts';
import { baseImage, targetEnv } from '../harness/webapi.ts';

const docker = inject('docker');
const fixtures = path.resolve(import.meta.dirname, '../fixtures/compose-projects');
const show = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

interface Fixture {
  name: string;
  /** COMPOSE_FILE entries, relative to the fixtures folder. */
  files: string[];
  /** Where compose itself puts the project directory: the first file's folder. */
  projectDir: string;
  targets: string[];
  rebuild: string;
  /** Commands in the rebuilt service and what they print: proof of the build context, env_file, secrets, bind mounts. */
  checks: Array<[string[], string]>;
}

const cases: Fixture[] = [
  {
    name: 'node-api',
    files: ['node-api/compose.yaml'],
    projectDir: 'node-api',
    targets: ['backend-rebuild', 'shell-backend', 'worker-rebuild', 'logs-worker', 'db-restart'],
    rebuild: 'backend',
    checks: [
      [['cat', '/srv/www/health'], 'node-api backend context'],
      [['cat', '/run/secrets/api_key'], 'fixture-api-key'],
      [['sh', '-c', 'echo $LOG_LEVEL'], 'debug'],
    ],
  },
  {
    name: 'django-docker',
    files: ['django-docker/docker/compose.yaml'],
    projectDir: 'django-docker/docker',
    targets: ['web-rebuild', 'redis-restart', 'mailpit-stop', 'shell-web'],
    rebuild: 'web',
    checks: [
      [['cat', '/app/www/health'], 'django-docker app context'],
      [['cat', '/app/src/manage.py'], "print('manage')"],
    ],
  },
  {
    name: 'override-pair',
    files: ['override-pair/compose.yaml', 'override-pair/compose.override.yaml'],
    projectDir: 'override-pair',
    targets: ['site-rebuild', 'proxy-rebuild', 'logs-proxy'],
    rebuild: 'proxy',
    checks: [[['cat', '/srv/index.html'], 'proxy']],
  },
];

describeE2E('existing compose projects adopted with COMPOSE_FILE', () => {
  let p: TestProject;
  beforeAll(async () => {
    p = await makeProject({ docker });
  });
  afterAll(async () => {
    await p?.cleanup();
    const env = { ...process.env, ...targetEnv(docker) };
    const imgs = spawnSync('docker', ['images', '-q', '--filter', `reference=${p.name}*`], { encoding: 'utf8', env }).stdout.split('\n');
    const ids = [...new Set(imgs.filter(Boolean))];
    if (ids.length) spawnSync('docker', ['rmi', '-f', ...ids], { stdio: 'ignore', env });
  });

  for (const c of cases) {
    const env = () => ({
      COMPOSE_FILE: c.files.map((f) => path.join(fixtures, f)).join(':'),
      BASE_IMAGE: baseImage(),
      ...(docker.postgresImage ? { POSTGRES_IMAGE: docker.postgresImage } : {}),
      // The classic builder: FROM a local image works offline, under compose v1 and v2 alike.
      DOCKER_BUILDKIT: '0',
      COMPOSE_DOCKER_CLI_BUILD: '0',
      ...targetEnv(docker),
    });

    it(`${c.name}: --list shows its per-service targets (profiles and override files included)`, async () => {
      const r = await p.run(['--list'], { env: env() });
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).not.toContain('per-service targets unavailable');
      for (const t of c.targets) expect(r.stdout).toContain(`  ${t} `);
      expect(r.stdout).not.toContain('odoo-rebuild');
    });

    it(`${c.name}: ${c.rebuild}-rebuild builds from its own context and the container sees its files`, async () => {
      const dry = await p.run([`${c.rebuild}-rebuild`, '--dry-run'], { env: env() });
      expect(dry.code, show(dry)).toBe(0);
      expect(dry.stderr).toContain(`--project-directory ${path.join(fixtures, c.projectDir)} build ${c.rebuild}`);

      const r = await p.run([`${c.rebuild}-rebuild`], { env: env(), timeoutMs: 300_000 });
      expect(r.code, show(r)).toBe(0);
      for (const [cmd, expected] of c.checks) {
        const out = await p.run([`shell-${c.rebuild}`, '--', ...cmd], { env: env() });
        expect(out.code, show(out)).toBe(0);
        expect(out.stdout.trim()).toBe(expected);
      }
    });
  }
});
