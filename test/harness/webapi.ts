// End-to-end helpers for the second stack (examples/web-api) and the compose projects of test/fixtures/compose-projects:
// stand-in images FROM the Debian base docker.ts builds, and a throwaway copy of the example laid out as in the repo.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { renderEnvFromTemplate } from '../../scripts/core/env.ts';
import { recipeHash } from './docker.ts';
import { TEST_PROJECT_PREFIX, exec, freePort, removeComposeProject, type RunOptions, type RunResult } from './project.ts';
import type { DockerInfo } from './services.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const imagesDir = path.join(import.meta.dirname, 'images');

/** The engine target's environment for every command (DOCKER_CONFIG for v2, DOCKER_HOST when remote). */
export const targetEnv = (docker: DockerInfo): Record<string, string> => docker.env ?? {};

/** The Debian base the stand-ins are built FROM (built by the global setup's ensureImages). */
export const baseImage = () => `local/compose-tasks-base:bookworm-${recipeHash().base}`;

/** The frontend stand-in (busybox httpd on 3000), built FROM the base when missing; tagged by its recipe. */
export function ensureFrontendImage(docker: DockerInfo): string {
  const base = baseImage();
  const recipe = fs.readFileSync(path.join(imagesDir, 'frontend/Dockerfile'));
  const tag = `local/webapi-frontend-standin:${crypto.createHash('sha256').update(base).update(recipe).digest('hex').slice(0, 12)}`;
  const env = { ...process.env, ...targetEnv(docker), DOCKER_BUILDKIT: '0' };
  if (spawnSync('docker', ['image', 'inspect', tag], { stdio: 'ignore', env }).status === 0) return tag;
  const r = spawnSync('docker', ['build', '-q', '--build-arg', `BASE=${base}`, '-t', tag, path.join(imagesDir, 'frontend')], {
    encoding: 'utf8',
    env,
  });
  if (r.status !== 0) throw new Error(`docker build ${tag} failed: ${r.stderr}`);
  return tag;
}

/** A unique compose project name the harness's leftover cleanup recognises as this run's. */
export const testProjectName = () =>
  `${TEST_PROJECT_PREFIX}${process.env.COMPOSE_TASKS_TEST_RUN ?? ''}${crypto.randomBytes(4).toString('hex')}`;

/** The test runner's environment without settings that would leak into a project, plus the engine target's. */
export function cleanEnv(docker: DockerInfo): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(e))
    if (/^(COMPOSE_|APP_ENV$|POSTGRES_|ODOO_|DB_|DATABASE_URL$|S3_|AWS_|BACKUP_|VITEST|NODE_ENV$)/.test(k)) delete e[k];
  return { ...e, ...targetEnv(docker) };
}

export interface WebApiProject {
  /** The example's folder in the copy (where `npx tsx tasks.ts` runs). */
  dir: string;
  env: Record<string, string>;
  name: string;
  /** `npx tsx tasks.ts …args` from the example's folder, as its README says; stdin closed, no TTY. */
  run(args: string[], o?: RunOptions): Promise<RunResult>;
  /** The compose command of the example (same files, project directory and env as the tasks use), for assertions. */
  compose(args: string[], o?: RunOptions): Promise<RunResult>;
  docker(args: string[], o?: RunOptions): Promise<RunResult>;
  cleanup(): Promise<void>;
}

/**
 * A copy laid out as in the repo (scripts/, package.json, node_modules, examples/web-api/), so the example's relative
 * import of ../../scripts/index.ts and the repo's node_modules resolve. The API's Dockerfile is the stand-in's.
 */
export async function makeWebApiProject(docker: DockerInfo, extra: Record<string, string> = {}): Promise<WebApiProject> {
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-webapi-'));
  for (const f of ['package.json', 'tsconfig.json', 'scripts']) fs.cpSync(path.join(repo, f), path.join(top, f), { recursive: true });
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(top, 'node_modules'));
  const dir = path.join(top, 'examples/web-api');
  fs.cpSync(path.join(repo, 'examples/web-api'), dir, { recursive: true, filter: (src) => !src.includes(`${path.sep}.cache`) });
  fs.copyFileSync(path.join(imagesDir, 'api/Dockerfile'), path.join(dir, 'api/Dockerfile'));
  fs.writeFileSync(path.join(dir, 'api/VERSION'), 'v1\n');

  const name = testProjectName();
  const values: Record<string, string> = {
    APP_ENV: 'development',
    COMPOSE_PROJECT_NAME: name,
    API_PORT: String(await freePort()),
    FRONTEND_PORT: String(await freePort()),
    DB_PORT: String(await freePort()),
    WAIT_TIMEOUT: '120',
    POSTGRES_PASSWORD: crypto.randomBytes(24).toString('base64url'),
    ...(docker.composeCmd ? { COMPOSE_CMD: docker.composeCmd } : {}),
    ...(docker.postgresImage ? { POSTGRES_IMAGE: docker.postgresImage } : {}),
    NODE_IMAGE: baseImage(),
    FRONTEND_IMAGE: ensureFrontendImage(docker),
    ...extra,
  };
  fs.writeFileSync(path.join(dir, '.env'), renderEnvFromTemplate(fs.readFileSync(path.join(dir, '.env.template'), 'utf8'), values), {
    mode: 0o600,
  });
  // The classic builder: FROM a local image works offline (no registry lookups), under compose v1 and v2 alike.
  const env = (o: RunOptions = {}): NodeJS.ProcessEnv => ({
    ...cleanEnv(docker),
    DOCKER_BUILDKIT: '0',
    COMPOSE_DOCKER_CLI_BUILD: '0',
    ...o.env,
  });
  const composeHead = () => {
    const flavor = docker.composeCmd ?? 'docker-compose';
    const head = flavor === 'docker compose' ? ['docker', 'compose'] : ['docker-compose'];
    return [...head, '--project-directory', dir, '-p', name, '-f', 'compose/compose.yaml', '-f', 'compose/compose.dev.yaml'];
  };
  const p: WebApiProject = {
    dir,
    env: values,
    name,
    run: (args, o = {}) =>
      exec([process.execPath, path.join(top, 'node_modules/tsx/dist/cli.mjs'), 'tasks.ts', ...args], {
        cwd: dir,
        env: env(o),
        input: o.input,
        timeoutMs: o.timeoutMs,
      }),
    compose: (args, o = {}) =>
      exec([...composeHead(), ...args], { cwd: dir, env: { ...env(o), ...values }, input: o.input, timeoutMs: o.timeoutMs }),
    docker: (args, o = {}) => exec(['docker', ...args], { cwd: dir, env: env(o), input: o.input, timeoutMs: o.timeoutMs }),
    async cleanup() {
      await p.compose(['down', '-v', '--remove-orphans'], { timeoutMs: 120_000 }).catch(() => undefined);
      await removeComposeProject(name);
      // Images compose built for this project (<name>_api / <name>-api); nobody else uses them.
      const imgs = spawnSync('docker', ['images', '-q', '--filter', `reference=${name}*`], { encoding: 'utf8', env: env() })
        .stdout.split('\n')
        .filter(Boolean);
      if (imgs.length) spawnSync('docker', ['rmi', '-f', ...new Set(imgs)], { stdio: 'ignore', env: env() });
      fs.rmSync(top, { recursive: true, force: true });
    },
  };
  return p;
}
