// A throwaway copy of the project for end-to-end tests: its own .env, compose project name and ports, run through the real CLI.
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { renderEnvFromTemplate } from '../../scripts/core/env.ts';
import type { DockerInfo } from './services.ts';

const repo = path.resolve(import.meta.dirname, '../..');

/** Compose project names of test projects start with this: the harness removes their leftovers (and nothing else). */
export const TEST_PROJECT_PREFIX = 'cttest';

/** What makeProject copies from the repository (sources are copied, not symlinked: tsx resolves symlinks). */
const COPIED = ['tasks.ts', 'package.json', 'tsconfig.json', '.env.template', 'bin', 'scripts', 'compose', 'addons', 'seeds'];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Text written to stdin (stdin is closed otherwise; never a TTY). */
  input?: string;
  /** Added to (or, with undefined-free values, overriding) the environment of the command. */
  env?: Record<string, string>;
  timeoutMs?: number;
  /** How the CLI starts: the `tasks` bin (default) or `npx tsx tasks.ts` as the README shows it. */
  entry?: 'bin' | 'tsx';
  /** A command the CLI runs under (e.g. `unshare -m …` to give the client its own view of a folder). */
  prefix?: string[];
}

export interface TestProject {
  /** The project copy (the root of `tasks`). */
  dir: string;
  /** The values written to .env (or, with writeEnv: false, the ones given through the environment), secrets included. */
  env: Record<string, string>;
  /** Compose project name (COMPOSE_PROJECT_NAME). */
  name: string;
  /** `node <dir>/bin/tasks.mjs ...args` (or `tsx tasks.ts ...args`) in dir, stdin closed, no TTY. */
  run(args: string[], o?: RunOptions): Promise<RunResult>;
  /** The compose command of this project (same files, project name and env as the tasks use), for assertions. */
  compose(args: string[], o?: RunOptions): Promise<RunResult>;
  /** `docker ...`, for assertions (inspect, volume ls). */
  docker(args: string[], o?: RunOptions): Promise<RunResult>;
  /** Removes containers, volumes and networks of this project, then the directory. */
  cleanup(): Promise<void>;
}

export interface MakeProjectOptions {
  docker?: DockerInfo;
  /** Extra or overriding .env values. */
  env?: Record<string, string>;
  /**
   * false: no .env is written (to test `tasks dev` creating one). The non-secret settings (project name,
   * images, ports, COMPOSE_CMD) then travel in the process environment of every run, as a user's shell would set them.
   */
  writeEnv?: boolean;
  /** Name prefix of the project folder under the temp dir (default `ct-project-`); spaces and non-ASCII allowed. */
  dirPrefix?: string;
}

/** A free TCP port on loopback (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Runs a command with stdin closed (or fed `input`), capturing both streams; never throws on a non-zero exit. */
export function exec(
  argv: string[],
  o: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: o.cwd,
      env: o.env ?? process.env,
      stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    if (o.input !== undefined) child.stdin!.end(o.input);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      stderr += `\n[harness] killed after ${o.timeoutMs} ms`;
    }, o.timeoutMs ?? 300_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal === 'SIGKILL' ? 137 : 128), stdout, stderr });
    });
  });
}

/**
 * Removes every container, volume and network compose created for project `name` (by compose's labels), on the engine
 * `env` points at (DOCKER_HOST, DOCKER_CONFIG of an engine target; the local engine by default).
 */
export async function removeComposeProject(name: string, env: Record<string, string> = {}): Promise<void> {
  const label = `label=com.docker.compose.project=${name}`;
  const e = { ...process.env, ...env };
  const ids = (args: string[]) =>
    spawnSync('docker', args, { encoding: 'utf8', env: e })
      .stdout?.split('\n')
      .map((s) => s.trim())
      .filter(Boolean) ?? [];
  const containers = ids(['ps', '-aq', '--filter', label]);
  if (containers.length) spawnSync('docker', ['rm', '-f', '-v', ...containers], { stdio: 'ignore', env: e });
  const volumes = ids(['volume', 'ls', '-q', '--filter', label]);
  if (volumes.length) spawnSync('docker', ['volume', 'rm', '-f', ...volumes], { stdio: 'ignore', env: e });
  const networks = ids(['network', 'ls', '-q', '--filter', label]);
  if (networks.length) spawnSync('docker', ['network', 'rm', ...networks], { stdio: 'ignore', env: e });
}

export async function makeProject(opts: MakeProjectOptions = {}): Promise<TestProject> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), opts.dirPrefix ?? 'ct-project-'));
  for (const f of COPIED) {
    const src = path.join(repo, f);
    if (fs.existsSync(src)) fs.cpSync(src, path.join(dir, f), { recursive: true });
  }
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));

  // The test run's id (set by the Docker harness's global setup) lets the harness clean up this run's leftovers only.
  const name = `${TEST_PROJECT_PREFIX}${process.env.COMPOSE_TASKS_TEST_RUN ?? ''}${crypto.randomBytes(4).toString('hex')}`;
  const [odooPort, dbPort] = [await freePort(), await freePort()];
  const settings: Record<string, string> = {
    APP_ENV: 'development',
    COMPOSE_PROJECT_NAME: name,
    ODOO_PORT: String(odooPort),
    DB_PORT: String(dbPort),
    WAIT_TIMEOUT: '120',
    ...(opts.docker?.composeCmd ? { COMPOSE_CMD: opts.docker.composeCmd } : {}),
    ...(opts.docker?.postgresImage ? { POSTGRES_IMAGE: opts.docker.postgresImage } : {}),
    ...(opts.docker?.odooImage ? { ODOO_IMAGE: opts.docker.odooImage } : {}),
    ...opts.env,
  };
  const writeEnv = opts.writeEnv !== false;
  const secrets: Record<string, string> =
    writeEnv && !settings.POSTGRES_PASSWORD ? { POSTGRES_PASSWORD: crypto.randomBytes(24).toString('base64url') } : {};
  const values = { ...settings, ...secrets };
  if (writeEnv) {
    const text = renderEnvFromTemplate(fs.readFileSync(path.join(dir, '.env.template'), 'utf8'), values);
    fs.writeFileSync(path.join(dir, '.env'), text, { mode: 0o600 });
    fs.chmodSync(path.join(dir, '.env'), 0o600);
  }

  // The engine target's environment (DOCKER_CONFIG for Compose v2, DOCKER_HOST=ssh://… for the remote engine): added to
  // every command this project runs, tasks, compose and docker alike, and to its cleanup.
  const engineEnv: Record<string, string> = opts.docker?.env ?? {};
  // The environment of every command: the test runner's, without settings that would leak into the project, plus ours.
  const baseEnv = (): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(e))
      if (/^(COMPOSE_|APP_ENV$|POSTGRES_|ODOO_|DB_|DATABASE_URL$|S3_|AWS_|BACKUP_|VITEST)/.test(k)) delete e[k];
    return writeEnv ? { ...e, ...engineEnv } : { ...e, ...engineEnv, ...settings };
  };

  /** Values the project sees: .env (re-read, so tests that edit it stay right) under the settings given through the environment. */
  const current = (): Record<string, string> => {
    const out: Record<string, string> = {};
    try {
      for (const line of fs.readFileSync(path.join(dir, '.env'), 'utf8').split('\n')) {
        const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
        if (m) out[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
      }
    } catch {
      /* no .env (yet) */
    }
    // Without a written .env, the settings are in the process environment, which wins over .env files.
    return writeEnv ? out : { ...out, ...settings };
  };

  const composeArgv = (): string[] => {
    const e = current();
    const flavor = (e.COMPOSE_CMD || opts.docker?.composeCmd || 'docker-compose').trim();
    const head = flavor === 'docker compose' || flavor === 'v2' ? ['docker', 'compose'] : ['docker-compose'];
    const files = e.COMPOSE_FILE
      ? []
      : ['compose/compose.yaml', ...(e.APP_ENV === 'development' || !e.APP_ENV ? ['compose/compose.dev.yaml'] : [])];
    return [...head, '--project-directory', dir, '-p', name, ...files.flatMap((f) => ['-f', path.join(dir, f)])];
  };

  const project: TestProject = {
    dir,
    env: values,
    name,
    run: (args, o = {}) => {
      const cli = o.entry === 'tsx' ? [path.join(dir, 'node_modules/tsx/dist/cli.mjs'), 'tasks.ts'] : [path.join(dir, 'bin/tasks.mjs')];
      return exec([...(o.prefix ?? []), process.execPath, ...cli, ...args], {
        cwd: dir,
        env: { ...baseEnv(), ...o.env },
        input: o.input,
        timeoutMs: o.timeoutMs,
      });
    },
    compose: (args, o = {}) => {
      const e = current();
      const env: NodeJS.ProcessEnv = { ...baseEnv(), ...e, ...o.env };
      for (const k of Object.keys(env)) if (env[k] === '') delete env[k];
      return exec([...composeArgv(), ...args], { cwd: dir, env, input: o.input, timeoutMs: o.timeoutMs });
    },
    docker: (args, o = {}) =>
      exec(['docker', ...args], { cwd: dir, env: { ...process.env, ...engineEnv, ...o.env }, input: o.input, timeoutMs: o.timeoutMs }),
    async cleanup() {
      if (opts.docker?.available) {
        await project.compose(['down', '-v', '--remove-orphans'], { timeoutMs: 120_000 }).catch(() => undefined);
        await removeComposeProject(name, engineEnv);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return project;
}
