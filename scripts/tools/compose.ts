// Docker Compose: v2/v1 detection, argv builders (pure data), service discovery from `compose config`, health waits.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { ExitCode, TaskError, CommandError } from '../core/errors.ts';
import type { Cmd, Runner } from '../core/runner.ts';

export type Flavor = 'v2' | 'v1';

export interface ComposeProject {
  flavor: Flavor;
  /** Where the tasks run (the folder of tasks.ts): -f files and COMPOSE_FILE entries are relative to it. */
  root: string;
  /**
   * compose's project directory (--project-directory) when it is not `root`: relative paths inside the compose files
   * (build contexts, bind mounts, secrets, env_file) resolve here. See projectDirectory().
   */
  projectDir?: string;
  /** Files passed with -f; empty when COMPOSE_FILE decides (compose reads it from the environment). */
  files: string[];
  /** v1 only: the docker context to use (v1 ignores DOCKER_CONTEXT; scripts/tools/engine.ts prepareProject sets it). */
  context?: string;
}

export interface ServiceInfo {
  name: string;
  image?: string;
  build: boolean;
  profiles: string[];
  ports: string[];
  healthcheck: boolean;
  /** Absolute sources of its bind mounts (relative ones resolved by compose against the project folder). */
  binds?: string[];
}

/** Which compose files apply: COMPOSE_FILE wins (compose reads it), else the base files plus the dev override in development. */
export function composeFiles(env: Record<string, string | undefined>, base: string[], dev: string[]): string[] {
  if (env.COMPOSE_FILE) return [];
  return env.APP_ENV === 'development' || env.APP_ENV === undefined ? [...base, ...dev] : [...base];
}

/** The files compose will read, for cache keys and messages. */
export function effectiveComposeFiles(p: Omit<ComposeProject, 'flavor'>, env: Record<string, string | undefined>): string[] {
  if (p.files.length) return p.files.map((f) => path.resolve(p.root, f));
  const sep = env.COMPOSE_PATH_SEPARATOR ?? (process.platform === 'win32' ? ';' : ':');
  return (env.COMPOSE_FILE ?? '')
    .split(sep)
    .filter(Boolean)
    .map((f) => path.resolve(p.root, f));
}

/**
 * The project directory compose gets. compose's own rule is the folder of the first compose file (-f or COMPOSE_FILE),
 * unless --project-directory says otherwise; compose reads no variable for it (docker/compose#12200). Here:
 *   1. COMPOSE_PROJECT_DIRECTORY, when set (the tasks' own setting, relative to the root), for any files;
 *   2. the configured files (or a COMPOSE_FILE starting with the configured base file): config.projectDirectory, else
 *      the root when the first file is inside it (the shipped layout: ./addons next to compose/), else its folder;
 *   3. other files (COMPOSE_FILE naming another project's compose.yaml): compose's rule, the first file's folder.
 */
export function projectDirectory(
  root: string,
  env: Record<string, string | undefined>,
  config: { composeFiles: readonly string[]; projectDirectory?: string },
  files: string[],
): string {
  if (env.COMPOSE_PROJECT_DIRECTORY) return path.resolve(root, env.COMPOSE_PROJECT_DIRECTORY);
  const first = effectiveComposeFiles({ root, files }, env)[0];
  if (!first) return root;
  const configured = config.composeFiles[0] !== undefined && path.resolve(root, config.composeFiles[0]) === first;
  if (!configured) return path.dirname(first);
  if (config.projectDirectory !== undefined) return path.resolve(root, config.projectDirectory);
  const rel = path.relative(root, first);
  return rel.startsWith('..') || path.isAbsolute(rel) ? path.dirname(first) : root;
}

export function composeBase(p: ComposeProject): string[] {
  const head = p.flavor === 'v2' ? ['docker', 'compose'] : ['docker-compose', ...(p.context ? ['--context', p.context] : [])];
  return [...head, '--project-directory', p.projectDir ?? p.root, ...p.files.flatMap((f) => ['-f', f])];
}

export interface UpOptions {
  services?: string[];
  wait?: boolean;
  /** Seconds `up --wait` may take (v2; WAIT_TIMEOUT): without it v2 waits as long as the healthchecks' retries allow. */
  waitTimeout?: number;
  build?: boolean;
  noDeps?: boolean;
  forceRecreate?: boolean;
  profiles?: string[];
}
export interface ExecOptions {
  tty?: boolean;
  user?: string;
  workdir?: string;
  env?: Record<string, string>;
}

/** Argument builders. Each returns argv only; nothing runs. */
export const compose = {
  up(p: ComposeProject, o: UpOptions = {}): string[] {
    return [
      ...composeBase(p),
      ...(o.profiles ?? []).flatMap((x) => ['--profile', x]),
      'up',
      '-d',
      ...(o.wait && p.flavor === 'v2' ? ['--wait', ...(o.waitTimeout ? ['--wait-timeout', String(o.waitTimeout)] : [])] : []),
      ...(o.build ? ['--build'] : []),
      ...(o.noDeps ? ['--no-deps'] : []),
      ...(o.forceRecreate ? ['--force-recreate'] : []),
      ...(o.services ?? []),
    ];
  },
  down(p: ComposeProject, o: { volumes?: boolean } = {}): string[] {
    return [...composeBase(p), 'down', '--remove-orphans', ...(o.volumes ? ['--volumes'] : [])];
  },
  stop: (p: ComposeProject, services: string[] = []) => [...composeBase(p), 'stop', ...services],
  start: (p: ComposeProject, services: string[] = []) => [...composeBase(p), 'start', ...services],
  restart: (p: ComposeProject, services: string[] = []) => [...composeBase(p), 'restart', ...services],
  build: (p: ComposeProject, services: string[] = [], o: { pull?: boolean } = {}) => [
    ...composeBase(p),
    'build',
    ...(o.pull ? ['--pull'] : []),
    ...services,
  ],
  pull: (p: ComposeProject, services: string[] = []) => [
    ...composeBase(p),
    'pull',
    ...(p.flavor === 'v2' ? ['--ignore-buildable'] : ['--ignore-pull-failures']),
    ...services,
  ],
  logs(p: ComposeProject, o: { services?: string[]; follow?: boolean; tail?: string; timestamps?: boolean } = {}): string[] {
    return [
      ...composeBase(p),
      'logs',
      '--no-color',
      ...(o.follow ? ['--follow'] : []),
      ...(o.tail ? ['--tail', o.tail] : []),
      ...(o.timestamps ? ['--timestamps'] : []),
      ...(o.services ?? []),
    ];
  },
  /** Container ids of a service (or all); works the same in v1 and v2. */
  psIds: (p: ComposeProject, services: string[] = [], all = false) => [
    ...composeBase(p),
    'ps',
    '-q',
    ...(all && p.flavor === 'v2' ? ['--all'] : []),
    ...services,
  ],
  /** `exec -T` unless a terminal is wanted: a TTY corrupts binary streams and fails under cron. */
  exec(p: ComposeProject, service: string, command: readonly string[], o: ExecOptions = {}): string[] {
    return [
      ...composeBase(p),
      'exec',
      ...(o.tty ? [] : ['-T']),
      ...(o.user ? ['--user', o.user] : []),
      ...(o.workdir ? ['--workdir', o.workdir] : []),
      ...Object.keys(o.env ?? {}).flatMap((k) => ['-e', `${k}=${o.env![k]}`]),
      service,
      ...command,
    ];
  },
  run(
    p: ComposeProject,
    service: string,
    command: readonly string[],
    o: ExecOptions & { rm?: boolean; noDeps?: boolean; entrypoint?: string; volumes?: string[]; name?: string } = {},
  ): string[] {
    return [
      ...composeBase(p),
      'run',
      ...(o.rm === false ? [] : ['--rm']),
      ...(o.tty ? [] : ['-T']),
      ...(o.noDeps ? ['--no-deps'] : []),
      ...(o.name ? ['--name', o.name] : []),
      ...(o.user ? ['--user', o.user] : []),
      ...(o.entrypoint !== undefined ? ['--entrypoint', o.entrypoint] : []),
      ...(o.volumes ?? []).flatMap((v) => ['-v', v]),
      service,
      ...command,
    ];
  },
  /** The merged configuration as compose resolves it (all files, overrides, profiles, interpolation). Holds secrets: never print it. */
  config: (p: ComposeProject) => [
    ...composeBase(p),
    ...(p.flavor === 'v2' ? ['--profile', '*', 'config', '--format', 'json'] : ['config']),
  ],
  version: (flavor: Flavor) => (flavor === 'v2' ? ['docker', 'compose', 'version', '--short'] : ['docker-compose', 'version', '--short']),
};

// v2 / docker CLI: "Cannot connect to the Docker daemon at unix://… Is the docker daemon running?";
// v1 (docker-py): "Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2, …))".
const DAEMON_DOWN = new RegExp(
  [
    'Cannot connect to the Docker daemon',
    "Couldn't connect to Docker daemon",
    'Is the docker daemon running',
    'error during connect',
    'Error while fetching server API version',
  ].join('|'),
  'i',
);
const NO_PERMISSION = /permission denied while trying to connect to the Docker daemon|PermissionError\(13|Permission denied'\)/i;

/** Turns a failed compose/docker command into the one line a user needs. */
export function explainDockerError(err: unknown): unknown {
  if (err instanceof CommandError && NO_PERMISSION.test(err.stderrTail)) {
    return new TaskError('no permission to use the Docker engine', {
      exitCode: ExitCode.prerequisite,
      hint: 'add your user to the docker group (sudo usermod -aG docker $USER, then log in again), or run as root',
    });
  }
  if (err instanceof CommandError && DAEMON_DOWN.test(err.stderrTail)) {
    return new TaskError('the Docker engine is not running', {
      exitCode: ExitCode.prerequisite,
      hint: 'start it (sudo systemctl start docker, or open Docker Desktop), then check with: docker info',
    });
  }
  return err;
}

// v2: `service "db" is not running`; v1 exits 1 and prints nothing when the service has no container.
const SERVICE_DOWN = /is not running|No container found/i;

/**
 * Why a read-only command could not run at all (no engine, the stack is down, the database server does not answer, a
 * tool is missing), as one line; undefined for any other failure (a command that ran and said no, a corrupt file).
 */
export function cannotRunReason(err: unknown): string | undefined {
  const docker = explainDockerError(err);
  if (docker !== err && docker instanceof TaskError) return docker.message;
  if (err instanceof CommandError) {
    const at = err.argv.indexOf('exec');
    const service = err.argv.slice(at + 1).find((a) => !a.startsWith('-'));
    const silent = err.exitCode === 1 && !err.stderrTail.trim();
    if (at >= 0 && (SERVICE_DOWN.test(err.stderrTail) || silent)) return `the stack is not running: no ${service} container is up`;
    return undefined;
  }
  if (err instanceof TaskError && err.exitCode === ExitCode.prerequisite) return err.message.split('\n')[0];
  return undefined;
}

/** Finds the compose command: COMPOSE_CMD forces one; else `docker compose` (v2), else `docker-compose` (v1). */
/** Probes that may wait on a server over ssh (versions, ps, inspect, context inspect) get this bound; data streams never do. */
export const PROBE_TIMEOUT_MS = 30_000;

/**
 * What the detection depends on: PATH, the docker binaries and plugins found on it (their mtimes), where the CLI
 * looks for plugins (DOCKER_CONFIG) and the engine selection (DOCKER_HOST, DOCKER_CONTEXT).
 */
export function flavorKey(env: Record<string, string | undefined>): string {
  const parts = [env.PATH ?? '', env.DOCKER_CONFIG ?? '', env.DOCKER_HOST ?? '', env.DOCKER_CONTEXT ?? ''];
  const dirs = (env.PATH ?? '').split(path.delimiter).filter(Boolean);
  const home = env.HOME ?? '';
  const pluginDirs = [
    ...(env.DOCKER_CONFIG ? [path.join(env.DOCKER_CONFIG, 'cli-plugins')] : []),
    path.join(home, '.docker/cli-plugins'),
    '/usr/local/lib/docker/cli-plugins',
    '/usr/libexec/docker/cli-plugins',
    '/usr/lib/docker/cli-plugins',
  ];
  for (const f of [
    ...dirs.flatMap((d) => [path.join(d, 'docker'), path.join(d, 'docker-compose')]),
    ...pluginDirs.map((d) => path.join(d, 'docker-compose')),
  ]) {
    try {
      parts.push(`${f}:${fs.statSync(f).mtimeMs}`);
    } catch {
      /* absent */
    }
  }
  return crypto.createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);
}

/** Whether an executable named `name` is in one of PATH's directories (no process started). */
export function onPath(name: string, pathVar: string): boolean {
  return pathVar
    .split(path.delimiter)
    .filter(Boolean)
    .some((d) => {
      try {
        fs.accessSync(path.join(d, name), fs.constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

export async function detectFlavor(probe: Runner, env: Record<string, string | undefined>, cacheDir?: string): Promise<Flavor> {
  // docker-compose v1 runs without the docker CLI, but the tasks need it (inspect, health): say so first.
  if (env.PATH !== undefined && !onPath('docker', env.PATH)) {
    throw new TaskError('Docker is not installed: no `docker` command on PATH', {
      exitCode: ExitCode.prerequisite,
      hint: `install Docker (https://docs.docker.com/engine/install/) or add its directory to PATH (PATH=${env.PATH})`,
    });
  }
  const forced = env.COMPOSE_CMD?.trim();
  if (forced) {
    if (forced === 'docker compose' || forced === 'v2') return 'v2';
    if (forced === 'docker-compose' || forced === 'v1') return 'v1';
    throw new TaskError(`COMPOSE_CMD must be "docker compose" or "docker-compose", not "${forced}"`, { exitCode: ExitCode.invalidEnv });
  }
  const cacheFile = cacheDir ? path.join(cacheDir, 'flavor.json') : undefined;
  const key = flavorKey(env);
  if (cacheFile) {
    try {
      const c = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { key: string; flavor: Flavor };
      if (c.key === key) return c.flavor;
    } catch {
      /* not cached */
    }
  }
  for (const flavor of ['v2', 'v1'] as const) {
    try {
      await probe.run({ argv: compose.version(flavor), stdout: 'capture', stderr: 'capture', timeoutMs: PROBE_TIMEOUT_MS });
      if (cacheFile) {
        fs.mkdirSync(path.dirname(cacheFile), { recursive: true });
        fs.writeFileSync(cacheFile, JSON.stringify({ key, flavor }));
      }
      return flavor;
    } catch {
      /* try the next one */
    }
  }
  throw new TaskError('Docker Compose not found: neither `docker compose` nor `docker-compose` runs', {
    exitCode: ExitCode.prerequisite,
    hint: 'install Docker with the compose plugin (https://docs.docker.com/compose/install/) or docker-compose',
  });
}

/** Parses `compose config` output (v2 JSON or v1 YAML) into services. */
export async function parseConfig(text: string, flavor: Flavor): Promise<ServiceInfo[]> {
  let doc: { services?: Record<string, Record<string, unknown>> };
  if (flavor === 'v2' && text.trim().startsWith('{')) doc = JSON.parse(text);
  else {
    const { YAML } = await import('zx');
    doc = YAML.parse(text);
  }
  return Object.entries(doc.services ?? {}).map(([name, s]) => ({
    name,
    image: typeof s.image === 'string' ? s.image : undefined,
    build: s.build !== undefined,
    profiles: Array.isArray(s.profiles) ? (s.profiles as string[]) : [],
    ports: Array.isArray(s.ports)
      ? (s.ports as unknown[]).map((x) =>
          typeof x === 'string'
            ? x
            : `${(x as { published?: string | number }).published ?? ''}:${(x as { target?: number }).target ?? ''}`,
        )
      : [],
    healthcheck: s.healthcheck !== undefined && !(s.healthcheck as { disable?: boolean }).disable,
    binds: bindSources(s.volumes),
  }));
}

/** Bind sources of a service's `volumes`: long syntax (v2 JSON: type bind) or short strings whose source is a path (v1 YAML). */
export function bindSources(volumes: unknown): string[] {
  if (!Array.isArray(volumes)) return [];
  const out: string[] = [];
  for (const v of volumes) {
    if (typeof v === 'string') {
      const source = v.split(':')[0] ?? '';
      if (/^[./~]/.test(source)) out.push(source);
    } else if (v && typeof v === 'object') {
      const o = v as { type?: string; source?: string };
      if (o.type === 'bind' && typeof o.source === 'string') out.push(o.source);
    }
  }
  return out;
}

/** Cache key: the compose files' contents, the env files and every COMPOSE_* setting. */
export function discoveryKey(p: Omit<ComposeProject, 'flavor'>, env: Record<string, string | undefined>, envFiles: string[]): string {
  const h = crypto.createHash('sha256');
  // The shape of a cached answer: bump when ServiceInfo changes (2: binds).
  h.update(`2\0${p.root}\0${p.projectDir ?? ''}\0${p.files.join(':')}\0`);
  // Variables the compose files interpolate (${ODOO_IMAGE}, $DB_PORT) count with their values, from the env files or
  // the real environment: the images a remote path part runs come from this answer.
  const used = new Set<string>();
  const composeFiles = effectiveComposeFiles(p, env);
  for (const f of [...composeFiles, ...envFiles.map((e) => path.join(p.root, e))]) {
    h.update(f);
    try {
      const text = fs.readFileSync(f);
      h.update(text);
      if (composeFiles.includes(f)) for (const m of text.toString('utf8').matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) used.add(m[1]!);
    } catch {
      h.update('missing');
    }
  }
  for (const k of Object.keys(env)
    .filter((k) => k.startsWith('COMPOSE_') || k === 'APP_ENV' || used.has(k))
    .sort())
    h.update(`${k}=${env[k]}\0`);
  return h.digest('hex').slice(0, 16);
}

/** Services as compose resolves them; cached by content so `tasks --list` stays fast. */
export async function discoverServices(
  probe: Runner,
  where: Omit<ComposeProject, 'flavor'>,
  project: () => Promise<ComposeProject>,
  env: Record<string, string | undefined>,
  envFiles: string[],
): Promise<ServiceInfo[]> {
  const dir = path.join(where.root, '.cache', 'compose-tasks');
  const key = discoveryKey(where, env, envFiles);
  const file = path.join(dir, `services-${key}.json`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as ServiceInfo[];
  } catch {
    /* not cached */
  }
  const p = await project();
  let out: string;
  try {
    out = (await probe.run({ argv: compose.config(p), stdout: 'capture', stderr: 'capture', timeoutMs: PROBE_TIMEOUT_MS })).stdout;
  } catch (err) {
    const e = explainDockerError(err);
    if (e instanceof CommandError) {
      throw new TaskError(`compose config failed: ${e.stderrTail.trim().split('\n').slice(-1)[0] ?? ''}`, {
        exitCode: ExitCode.invalidEnv,
        hint: `check ${effectiveComposeFiles(p, env)
          .map((f) => path.relative(p.root, f))
          .join(', ')}`,
      });
    }
    throw e;
  }
  const services = await parseConfig(out, p.flavor);
  fs.mkdirSync(dir, { recursive: true });
  for (const old of fs.readdirSync(dir)) if (old.startsWith('services-')) fs.rmSync(path.join(dir, old), { force: true });
  fs.writeFileSync(file, JSON.stringify(services));
  return services;
}

export interface ContainerState {
  id: string;
  service: string;
  status: string;
  health: string;
}

/** State and health of each container of the project (v1 and v2 alike, through docker inspect). */
export async function containerStates(runner: Runner, p: ComposeProject, services: string[] = []): Promise<ContainerState[]> {
  const ids = (
    await runner.run({ argv: compose.psIds(p, services, true), stdout: 'capture', stderr: 'capture', timeoutMs: PROBE_TIMEOUT_MS })
  ).stdout
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!ids.length) return [];
  // Plain JSON, parsed here: no template logic that older engines evaluate differently (docker 20.10 answered
  // `{{if .State.Health}}` on a container without a healthcheck with "map has no entry for key Health").
  const r = await runner.run({
    argv: ['docker', 'inspect', '--type', 'container', '--format', '{{json .Id}}\t{{json .Config.Labels}}\t{{json .State}}', ...ids],
    stdout: 'capture',
    stderr: 'capture',
    timeoutMs: PROBE_TIMEOUT_MS,
  });
  return parseContainerStates(r.stdout);
}

/** One `docker inspect --format '{{json .Id}}\t{{json .Config.Labels}}\t{{json .State}}'` line per container. */
export function parseContainerStates(stdout: string): ContainerState[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [id, labels, state] = l.split('\t').map((f) => JSON.parse(f) as unknown) as [
        string,
        Record<string, string> | null,
        { Status?: string; Health?: { Status?: string } | null } | null,
      ];
      const service = labels?.['com.docker.compose.service'] ?? '';
      return { id: String(id).slice(0, 12), service, status: state?.Status ?? '', health: state?.Health?.Status ?? 'none' };
    });
}

/** Waits until every container of the given services runs and passes its healthcheck (v1 has no `up --wait`). */
export async function waitHealthy(
  runner: Runner,
  p: ComposeProject,
  services: string[],
  timeoutMs: number,
  sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)),
): Promise<ContainerState[]> {
  if (runner.dryRun) return [];
  const deadline = Date.now() + timeoutMs;
  let last: ContainerState[] = [];
  for (;;) {
    last = await containerStates(runner, p, services);
    const bad = last.find((c) => c.status === 'exited' || c.status === 'dead' || c.health === 'unhealthy');
    if (bad)
      throw new TaskError(`service ${bad.service} is ${bad.health === 'unhealthy' ? 'unhealthy' : bad.status}`, {
        exitCode: ExitCode.unhealthy,
        hint: `see its logs: tasks logs-${bad.service}`,
      });
    const ready = last.length > 0 && last.every((c) => c.status === 'running' && (c.health === 'healthy' || c.health === 'none'));
    if (ready) return last;
    if (Date.now() > deadline) {
      const waiting = last
        .filter((c) => !(c.status === 'running' && (c.health === 'healthy' || c.health === 'none')))
        .map((c) => `${c.service} (${c.status}/${c.health})`);
      throw new TaskError(`services not healthy after ${Math.round(timeoutMs / 1000)} s: ${waiting.join(', ') || 'no containers'}`, {
        exitCode: ExitCode.unhealthy,
        hint: 'see the logs: tasks logs',
      });
    }
    await sleep(1000);
  }
}

export type { Cmd };
