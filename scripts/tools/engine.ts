// Which Docker engine the tasks talk to (DOCKER_HOST, DOCKER_CONTEXT, the current context), and what changes when it is
// remote: host paths resolve on the server, URLs name the server, Compose v1 over ssh:// needs paramiko.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { CommandError, ExitCode, TaskError } from '../core/errors.ts';
import type { Runner } from '../core/runner.ts';
import type { TaskContext } from '../core/define.ts';
import { PROBE_TIMEOUT_MS, type ComposeProject, type Flavor, type ServiceInfo } from './compose.ts';

export type EngineSource = 'DOCKER_HOST' | 'DOCKER_CONTEXT' | 'context' | 'default';

export interface Engine {
  remote: boolean;
  /** The server's host name (ssh:// and tcp:// endpoints). */
  host?: string;
  /** The endpoint as docker sees it: unix:///var/run/docker.sock, ssh://user@host:port, tcp://host:2376 … */
  endpoint: string;
  source: EngineSource;
  /** The context's name (source DOCKER_CONTEXT or context). */
  context?: string;
}

export interface Endpoint {
  scheme: string;
  remote: boolean;
  host?: string;
  user?: string;
  port?: number;
}

export const DEFAULT_ENDPOINT = 'unix:///var/run/docker.sock';

/**
 * ssh://user@host:port and tcp://host:port are remote; unix://, npipe:// and fd:// are this machine. No scheme is
 * tcp (as docker reads it).
 */
export function parseEndpoint(endpoint: string): Endpoint {
  const text = endpoint.trim();
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(text);
  const scheme = (m?.[1] ?? 'tcp').toLowerCase();
  const rest = m ? m[2]! : text;
  if (scheme === 'unix' || scheme === 'npipe' || scheme === 'fd') return { scheme, remote: false };
  // [user@]host[:port][/path]; an IPv6 host is in brackets.
  const auth = rest.split('/')[0] ?? '';
  const at = auth.lastIndexOf('@');
  const user = at >= 0 ? auth.slice(0, at) : undefined;
  const hostPort = at >= 0 ? auth.slice(at + 1) : auth;
  const hp = /^\[([^\]]+)\](?::(\d+))?$/.exec(hostPort) ?? /^([^:]*)(?::(\d+))?$/.exec(hostPort);
  const host = hp?.[1] || undefined;
  const port = hp?.[2] ? Number(hp[2]) : undefined;
  return { scheme, remote: true, host, ...(user ? { user } : {}), ...(port ? { port } : {}) };
}

/** The ssh command line that reaches an ssh:// endpoint's host, for hints: "ssh -p 2222 deploy@vps". */
export function sshCommand(endpoint: string): string {
  const e = parseEndpoint(endpoint);
  return `ssh ${e.port ? `-p ${e.port} ` : ''}${e.user ? `${e.user}@` : ''}${e.host ?? ''}`;
}

/** The docker CLI's configuration folder: $DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(env: Record<string, string | undefined>): string {
  return env.DOCKER_CONFIG || path.join(env.HOME ?? '', '.docker');
}

/** `currentContext` of config.json (what `docker context use` writes), if any. */
export function currentContext(env: Record<string, string | undefined>): string | undefined {
  try {
    const c = JSON.parse(fs.readFileSync(path.join(dockerConfigDir(env), 'config.json'), 'utf8')) as { currentContext?: unknown };
    return typeof c.currentContext === 'string' && c.currentContext ? c.currentContext : undefined;
  } catch {
    return undefined;
  }
}

/** Which engine selection applies, in the docker CLI's order: DOCKER_HOST, then DOCKER_CONTEXT, then config.json's current context. */
export function engineSelection(env: Record<string, string | undefined>): { source: EngineSource; host?: string; context?: string } {
  if (env.DOCKER_HOST) return { source: 'DOCKER_HOST', host: env.DOCKER_HOST };
  if (env.DOCKER_CONTEXT) return { source: 'DOCKER_CONTEXT', context: env.DOCKER_CONTEXT };
  const current = currentContext(env);
  if (current && current !== 'default') return { source: 'context', context: current };
  return { source: 'default' };
}

/**
 * What an engine answer depends on: DOCKER_HOST, DOCKER_CONTEXT, the config folder, its current context and the
 * chosen context's metadata file (docker context update rewrites it). Part of every cache this module writes.
 */
export function engineKey(env: Record<string, string | undefined>): string {
  const sel = engineSelection(env);
  const dir = dockerConfigDir(env);
  const parts = [env.DOCKER_HOST ?? '', env.DOCKER_CONTEXT ?? '', dir, currentContext(env) ?? ''];
  if (sel.context) {
    const meta = path.join(dir, 'contexts', 'meta', crypto.createHash('sha256').update(sel.context).digest('hex'), 'meta.json');
    try {
      parts.push(`${meta}:${fs.statSync(meta).mtimeMs}`);
    } catch {
      parts.push(`${meta}:missing`);
    }
  }
  return crypto.createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 16);
}

function readCache<T>(file: string | undefined, key: string): T | undefined {
  if (!file) return undefined;
  try {
    const c = JSON.parse(fs.readFileSync(file, 'utf8')) as { key: string; value: T };
    return c.key === key ? c.value : undefined;
  } catch {
    return undefined;
  }
}

function writeCache(file: string | undefined, key: string, value: unknown): void {
  if (!file) return;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ key, value }));
  } catch {
    /* a cache that cannot be written is only slower */
  }
}

/** The engine the docker CLI (and compose) will use; a context's endpoint comes from `docker context inspect` (cached). */
export async function describeEngine(probe: Runner, env: Record<string, string | undefined>, cacheDir?: string): Promise<Engine> {
  const sel = engineSelection(env);
  const make = (endpoint: string): Engine => {
    const e = parseEndpoint(endpoint);
    return {
      remote: e.remote,
      ...(e.host ? { host: e.host } : {}),
      endpoint,
      source: sel.source,
      ...(sel.context ? { context: sel.context } : {}),
    };
  };
  if (sel.source === 'DOCKER_HOST') return make(sel.host!);
  if (!sel.context || sel.context === 'default') return make(DEFAULT_ENDPOINT);
  const file = cacheDir ? path.join(cacheDir, 'engine.json') : undefined;
  const key = engineKey(env);
  const cached = readCache<Engine>(file, key);
  if (cached) return cached;
  let endpoint: string;
  try {
    const r = await probe.run({
      argv: ['docker', 'context', 'inspect', sel.context, '--format', '{{.Endpoints.docker.Host}}'],
      stdout: 'capture',
      stderr: 'capture',
      timeoutMs: PROBE_TIMEOUT_MS,
    });
    endpoint = r.stdout.trim();
  } catch (err) {
    const from =
      sel.source === 'DOCKER_CONTEXT' ? 'DOCKER_CONTEXT' : `the current context in ${path.join(dockerConfigDir(env), 'config.json')}`;
    const why = err instanceof CommandError ? (err.stderrTail.trim().split('\n').slice(-1)[0] ?? '') : (err as Error).message;
    throw new TaskError(`docker context "${sel.context}" (${from}) cannot be read: ${why}`, {
      exitCode: ExitCode.prerequisite,
      hint: 'list the contexts: docker context ls; choose one with docker context use <name> (or unset DOCKER_CONTEXT)',
      cause: err,
    });
  }
  const engine = make(endpoint || DEFAULT_ENDPOINT);
  writeCache(file, key, engine);
  return engine;
}

/** Where the engine came from, for people: "DOCKER_HOST", "DOCKER_CONTEXT=vps", "context vps (docker context use)". */
export function engineOrigin(e: Engine): string {
  if (e.source === 'DOCKER_HOST') return 'DOCKER_HOST';
  if (e.source === 'DOCKER_CONTEXT') return `DOCKER_CONTEXT=${e.context}`;
  if (e.source === 'context') return `context ${e.context} (docker context use)`;
  return 'the default socket';
}

/** One phrase naming the engine: "remote engine vps.example.com (ssh://deploy@vps.example.com, from DOCKER_HOST)". */
export function describeEngineText(e: Engine): string {
  return `${e.remote ? `remote engine ${e.host ?? '?'}` : 'local engine'} (${e.endpoint}, from ${engineOrigin(e)})`;
}

// ---------------------------------------------------------------------------------------------
// Compose v1 over ssh:// (docker-py imports paramiko for every ssh:// client, even when it shells out to ssh)

export const PARAMIKO_REFUSAL =
  'Compose v1 needs python3-paramiko for ssh:// engines (apt-get install python3-paramiko), or install Compose v2';

/** The interpreter of a docker-compose script from its shebang (`#!/usr/bin/python3`, `#!/usr/bin/env python3`); none for a binary. */
export function shebangInterpreter(firstBytes: string): string[] | undefined {
  if (!firstBytes.startsWith('#!')) return undefined;
  const words = (firstBytes.slice(2).split('\n')[0] ?? '').trim().split(/\s+/).filter(Boolean);
  return words.length ? words : undefined;
}

export interface ParamikoCheck {
  ok: boolean;
  /** What was run, or why nothing was: "/usr/bin/python3 -c 'import paramiko'", "a bundled binary". */
  detail: string;
}

/**
 * Whether `docker-compose` (v1) can open an ssh:// engine: its interpreter imports paramiko. A bundled binary
 * (the upstream PyInstaller build) carries its own. Only a yes is cached: installing paramiko changes no file we
 * could key on, so a no is asked again next time (about 0.1 s, and only when the task is refused anyway).
 */
export async function checkParamiko(probe: Runner, env: Record<string, string | undefined>, cacheDir?: string): Promise<ParamikoCheck> {
  const { findOnPath } = await import('../tasks/doctor.ts');
  const script = findOnPath('docker-compose', env.PATH);
  if (!script) return { ok: false, detail: 'docker-compose not found on PATH' };
  let head = '';
  let mtime = 0;
  try {
    const fd = fs.openSync(script, 'r');
    try {
      const buf = Buffer.alloc(256);
      head = buf.subarray(0, fs.readSync(fd, buf, 0, 256, 0)).toString('latin1');
    } finally {
      fs.closeSync(fd);
    }
    mtime = fs.statSync(script).mtimeMs;
  } catch {
    return { ok: false, detail: `${script} cannot be read` };
  }
  const interp = shebangInterpreter(head);
  if (!interp) return { ok: true, detail: `${script} is a bundled binary` };
  const argv = [...interp, '-c', 'import paramiko'];
  const shown = `${interp.join(' ')} -c 'import paramiko'`;
  const file = cacheDir ? path.join(cacheDir, 'paramiko.json') : undefined;
  const key = crypto
    .createHash('sha256')
    .update([script, mtime, interp.join(' '), env.PATH ?? '', env.PYTHONPATH ?? '', env.PYTHONHOME ?? '', engineKey(env)].join('\0'))
    .digest('hex')
    .slice(0, 16);
  if (readCache<boolean>(file, key)) return { ok: true, detail: `${shown} works (cached)` };
  try {
    await probe.run({ argv, stdout: 'ignore', stderr: 'capture', timeoutMs: PROBE_TIMEOUT_MS });
  } catch {
    return { ok: false, detail: `${shown} fails` };
  }
  writeCache(file, key, true);
  return { ok: true, detail: `${shown} works` };
}

/** Whether the paramiko question applies: Compose v1 and an ssh:// engine. */
export const needsParamiko = (flavor: Flavor, e: Engine) => flavor === 'v1' && /^ssh:\/\//i.test(e.endpoint);

/**
 * Run before any compose command: refuses Compose v1 over ssh:// without paramiko (one line), and makes v1 follow
 * DOCKER_CONTEXT (v1 reads DOCKER_HOST and config.json's current context, not DOCKER_CONTEXT) with --context.
 */
export async function prepareProject(
  probe: Runner,
  env: Record<string, string | undefined>,
  p: ComposeProject,
  cacheDir?: string,
): Promise<ComposeProject> {
  if (p.flavor !== 'v1') return p;
  const e = await describeEngine(probe, env, cacheDir);
  if (needsParamiko(p.flavor, e) && !(await checkParamiko(probe, env, cacheDir)).ok)
    throw new TaskError(PARAMIKO_REFUSAL, { exitCode: ExitCode.prerequisite });
  return e.source === 'DOCKER_CONTEXT' && e.context ? { ...p, context: e.context } : p;
}

// ---------------------------------------------------------------------------------------------
// Host paths on a remote engine

/**
 * Bind-mount sources inside the project folder: what relative paths in the compose files became. On a remote
 * engine the server resolves them on its own disk (docker/compose#8484). Sorted, each once, relative to root.
 */
export function projectBinds(services: ServiceInfo[], root: string): string[] {
  const out = new Set<string>();
  for (const s of services)
    for (const b of s.binds ?? []) {
      const rel = path.relative(root, b);
      if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) out.add(rel === '' ? '.' : `./${rel}`);
    }
  return [...out].sort();
}

/** The warning for a remote engine and the stack's project-folder binds; undefined when there is nothing to say. */
export function remoteBindsWarning(e: Engine, binds: string[], root: string): string | undefined {
  if (!e.remote || !binds.length) return undefined;
  return (
    `the engine is remote (${e.host ?? e.endpoint}): these bind mounts are read on ${e.host ?? 'the server'}, not here, ` +
    `at ${root}/…: ${binds.join(', ')} (they must exist there; docker/compose#8484)`
  );
}

/** A URL naming this machine (localhost, 127.0.0.1, 0.0.0.0, [::1]) names the engine's host instead when it is remote. */
export function urlForEngine(url: string, e: Pick<Engine, 'remote' | 'host'>): string {
  if (!e.remote || !e.host) return url;
  const host = e.host.includes(':') ? `[${e.host}]` : e.host;
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)(?:[^@/]*@)?(localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\])(?=[:/?#]|$)/i, `$1${host}`);
}

/** Where a host path is mounted in the one-off container that reads or restores it on a remote engine. */
export const PART_MOUNT = '/mnt/compose-tasks-part';

/**
 * A one-off container of an image the stack already has (`--pull never`: works offline, the engine needs no
 * registry), as root, with the parent folder of `abs` on the engine's host mounted at PART_MOUNT. `docker run
 * --mount`, not `compose run -v`: neither the service's own binds nor a missing folder get created on the server
 * (a missing parent fails, a missing folder is reported by the command). The parent, not the folder: a restore
 * renames the folder itself.
 */
export function hostPathRun(
  image: string,
  abs: string,
  entrypoint: string,
  args: readonly string[],
  o: { readOnly?: boolean } = {},
): string[] {
  const field = (s: string) => (/[",]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const mount = ['type=bind', `source=${path.dirname(abs)}`, `target=${PART_MOUNT}`, ...(o.readOnly ? ['readonly'] : [])].map(field);
  return [
    'docker',
    'run',
    '--rm',
    '-i',
    '--pull',
    'never',
    '--user',
    '0',
    '--entrypoint',
    entrypoint,
    '--mount',
    mount.join(','),
    image,
    ...args,
  ];
}

/**
 * The image of a compose service as the engine knows it: its `image`, else the name compose gives a built one
 * (<project>-<service> in v2, <project>_<service> in v1).
 */
export function serviceImage(services: ServiceInfo[], service: string, project: string, flavor: Flavor): string | undefined {
  const s = services.find((x) => x.name === service);
  if (!s) return undefined;
  if (s.image) return s.image;
  return s.build ? `${project.toLowerCase()}${flavor === 'v2' ? '-' : '_'}${service}` : undefined;
}

/** The folder's path inside the container of hostPathRun. */
export const inPartMount = (abs: string) => `${PART_MOUNT}/${path.basename(abs)}`;

/** The service whose image reads and restores a path part on a remote engine: the part's own, else the first app service. */
export function pathPartService(part: { service?: string }, appServices: readonly string[]): string | undefined {
  return part.service ?? appServices[0];
}

/** The image that reads and restores path part `part` on a remote engine (see hostPathRun). */
export async function pathPartImage(ctx: TaskContext, part: { name: string; service?: string }): Promise<string> {
  const service = pathPartService(part, ctx.config.appServices);
  const fix = 'set service on the part in tasks.ts (config.backupParts) to a service whose image has bash and tar';
  if (!service)
    throw new TaskError(`part ${part.name} lives on the remote engine's host and no service is set to reach it`, {
      exitCode: ExitCode.usage,
      hint: fix,
    });
  const p = await ctx.compose();
  const image = serviceImage(await ctx.services(), service, ctx.env.get('COMPOSE_PROJECT_NAME') || path.basename(ctx.root), p.flavor);
  if (!image)
    throw new TaskError(`part ${part.name}: service ${service} has no image in the compose files`, { exitCode: ExitCode.usage, hint: fix });
  return image;
}

/** A failed hostPathRun in one line: the image not on the engine, the folder's parent missing there; else as it was. */
export function explainHostPathError(err: unknown, image: string, abs: string): unknown {
  if (!(err instanceof CommandError)) return err;
  if (/No such image|Unable to find image|pull access denied|manifest unknown/i.test(err.stderrTail))
    return new TaskError(`the image ${image} is not on the remote engine`, {
      exitCode: ExitCode.prerequisite,
      hint: 'start the stack there once (tasks dev) or pull its images (tasks pull), then run this again',
      cause: err,
    });
  if (/bind source path does not exist/i.test(err.stderrTail))
    return new TaskError(`${path.dirname(abs)} does not exist on the remote engine's host`, {
      exitCode: ExitCode.prerequisite,
      hint: 'create it there (bind paths resolve on the server: docker/compose#8484)',
      cause: err,
    });
  return err;
}
