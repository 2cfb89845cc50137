// The Docker engine for end-to-end tests: started if needed, with locally built stand-in images (no registry here).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import type { DockerInfo } from './services.ts';
import { TEST_PROJECT_PREFIX, exec, removeComposeProject } from './project.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const imagesDir = path.join(import.meta.dirname, 'images');
/** Helper B's minimal Odoo schema; until it exists, the stand-in applies this placeholder. */
const schemaFile = path.join(repo, 'test/fixtures/odoo-min-schema.sql');
const PLACEHOLDER_SCHEMA =
  'CREATE TABLE IF NOT EXISTS ir_module_module(id serial primary key, name varchar not null unique, state varchar);\n';
const LOCK_DIR = '/var/tmp/compose-tasks-images.lock';

/** Marks this test run's compose projects, so stop() removes them and nothing of a concurrent run (see project.ts). */
export const RUN_ENV = 'COMPOSE_TASKS_TEST_RUN';

const log = (msg: string) => process.stderr.write(`[docker harness] ${msg}\n`);

function ok(argv: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore', env, timeout: 30_000 });
  return r.status === 0;
}

/** sha256 of the recipe: every file under images/, the schema the stand-in applies, and the debootstrap package list. */
export function recipeHash(): { base: string; images: string } {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(imagesDir);
  const base = crypto
    .createHash('sha256')
    .update(`bookworm\0minbase\0${fs.readFileSync(path.join(imagesDir, 'packages.txt'), 'utf8')}`)
    .digest('hex')
    .slice(0, 12);
  const h = crypto.createHash('sha256').update(base);
  for (const f of files) h.update(`${path.relative(imagesDir, f)}\0`).update(fs.readFileSync(f));
  h.update(schemaText());
  return { base, images: h.digest('hex').slice(0, 12) };
}

function schemaText(): string {
  try {
    return fs.readFileSync(schemaFile, 'utf8');
  } catch {
    return PLACEHOLDER_SCHEMA;
  }
}

/** The Debian mirror apt already uses (deb822 sources first, then sources.list). */
export function aptMirror(): string {
  for (const f of [
    '/etc/apt/sources.list.d/debian.sources',
    ...safeList('/etc/apt/sources.list.d')
      .filter((f) => f.endsWith('.sources'))
      .map((f) => path.join('/etc/apt/sources.list.d', f)),
  ]) {
    try {
      for (const block of fs.readFileSync(f, 'utf8').split(/\n\s*\n/)) {
        const uris = /^URIs:\s*(\S+)/m.exec(block)?.[1];
        const suites = /^Suites:\s*(.+)$/m.exec(block)?.[1] ?? '';
        if (uris && /(^|\s)bookworm(\s|$)/.test(suites)) return uris;
      }
    } catch {
      /* next */
    }
  }
  try {
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(fs.readFileSync('/etc/apt/sources.list', 'utf8'));
    if (m) return m[1]!;
  } catch {
    /* none */
  }
  return 'http://deb.debian.org/debian';
}

function safeList(d: string): string[] {
  try {
    return fs.readdirSync(d);
  } catch {
    return [];
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One image build at a time on this machine (concurrent test runs share the engine and the image cache). */
async function withBuildLock<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      fs.mkdirSync(LOCK_DIR);
      fs.writeFileSync(path.join(LOCK_DIR, 'pid'), String(process.pid));
      break;
    } catch {
      let pid = 0;
      try {
        pid = Number(fs.readFileSync(path.join(LOCK_DIR, 'pid'), 'utf8'));
      } catch {
        /* being written */
      }
      let alive = true;
      if (pid) {
        try {
          process.kill(pid, 0);
        } catch {
          alive = false;
        }
      }
      if (!alive) {
        fs.rmSync(LOCK_DIR, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`another process (pid ${pid}) holds ${LOCK_DIR} for too long`);
      await sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}

async function must(argv: string[], what: string, o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  const r = await exec(argv, { env: o.env, timeoutMs: o.timeoutMs ?? 600_000 });
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-15).join('\n')}`);
  return r.stdout;
}

const imageExists = (tag: string) => ok(['docker', 'image', 'inspect', tag]);

/** debootstrap (minbase + packages.txt) → docker import. About 45 s; then cached by tag. */
async function buildBase(tag: string): Promise<void> {
  if (!ok(['sh', '-c', 'command -v debootstrap']))
    throw new Error('debootstrap is not installed (apt-get install debootstrap), needed to build the stand-in images');
  if (process.getuid?.() !== 0) throw new Error('building the stand-in images needs root (debootstrap)');
  const packages = fs.readFileSync(path.join(imagesDir, 'packages.txt'), 'utf8').split(/\s+/).filter(Boolean);
  const work = fs.mkdtempSync(path.join('/var/tmp', 'compose-tasks-rootfs-'));
  const rootfs = path.join(work, 'rootfs');
  try {
    const mirror = aptMirror();
    log(`debootstrap bookworm (${packages.join(', ')}) from ${mirror}`);
    await must(['debootstrap', '--variant=minbase', `--include=${packages.join(',')}`, 'bookworm', rootfs, mirror], 'debootstrap', {
      timeoutMs: 900_000,
    });
    // No apt caches or lists in the image; no Debian-managed cluster (the entrypoint runs initdb itself).
    for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists', 'etc/postgresql', 'var/lib/postgresql']) {
      for (const f of safeList(path.join(rootfs, d)))
        if (f !== 'partial' && f !== 'lock') fs.rmSync(path.join(rootfs, d, f), { recursive: true, force: true });
    }
    log(`docker import ${tag}`);
    await must(
      [
        'bash',
        '-c',
        'set -o pipefail; tar -C "$1" -c . | ' +
          'docker import -c "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" - "$2"',
        'bash',
        rootfs,
        tag,
      ],
      'docker import',
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** docker build of one recipe directory (+ the schema) FROM the local base: works offline with the classic builder. */
async function buildImage(recipe: string, tag: string, base: string): Promise<void> {
  const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'compose-tasks-image-'));
  try {
    fs.cpSync(path.join(imagesDir, recipe), ctx, { recursive: true });
    fs.writeFileSync(path.join(ctx, 'schema.sql'), schemaText());
    log(`docker build ${tag}`);
    await must(['docker', 'build', '-q', '--build-arg', `BASE=${base}`, '-t', tag, ctx], `docker build ${tag}`, {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
    });
  } finally {
    fs.rmSync(ctx, { recursive: true, force: true });
  }
}

/** The stand-in images' tags (content-addressed), built when missing. */
export async function ensureImages(): Promise<{ postgresImage: string; odooImage: string }> {
  const h = recipeHash();
  const base = `local/compose-tasks-base:bookworm-${h.base}`;
  const postgresImage = `local/postgres:15-${h.images}`;
  const odooImage = `local/odoo-standin:17-${h.images}`;
  if (imageExists(postgresImage) && imageExists(odooImage)) return { postgresImage, odooImage };
  await withBuildLock(async () => {
    if (!imageExists(base)) await buildBase(base);
    if (!imageExists(postgresImage)) await buildImage('postgres', postgresImage, base);
    if (!imageExists(odooImage)) await buildImage('odoo', odooImage, base);
    removeSupersededImages([base, postgresImage, odooImage]);
  });
  return { postgresImage, odooImage };
}

/** Older builds of the stand-ins (the recipe or schema changed), a day old or more: removed unless a container still uses them. */
function removeSupersededImages(current: string[]): void {
  const r = spawnSync('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}\t{{.CreatedAt}}'], { encoding: 'utf8' });
  const repos = new Set(current.map((t) => t.slice(0, t.lastIndexOf(':'))));
  const dayAgo = Date.now() - 24 * 3600_000;
  const old = (r.stdout ?? '')
    .split('\n')
    .map((l) => l.split('\t'))
    .filter(([t = '', created = '']) => {
      if (!t || current.includes(t) || !repos.has(t.slice(0, t.lastIndexOf(':')))) return false;
      // "2026-11-22 05:26:37 +0000 UTC"; a copy of the project at another commit may be using a recent one.
      const when = Date.parse(created.replace(/^(\S+) (\S+) ([+-]\d{2})(\d{2}).*$/, '$1T$2$3:$4'));
      return Number.isFinite(when) && when < dayAgo;
    })
    .map(([t]) => t!);
  // Without -f: docker refuses to remove an image a container (of a concurrent run) still uses.
  for (const tag of old) spawnSync('docker', ['rmi', tag], { stdio: 'ignore' });
}

/** Starts dockerd in the background (root) and waits up to 60 s for `docker info`. */
async function startDaemon(): Promise<string | undefined> {
  if (!ok(['sh', '-c', 'command -v dockerd'])) return 'the Docker engine is not running and dockerd is not installed';
  if (process.getuid?.() !== 0) return 'the Docker engine is not running and starting dockerd needs root';
  const logFile = path.join(os.tmpdir(), `dockerd-${Date.now()}.log`);
  const fd = fs.openSync(logFile, 'a');
  const child = spawn('dockerd', [], { detached: true, stdio: ['ignore', fd, fd] });
  child.unref();
  fs.closeSync(fd);
  log(`started dockerd (pid ${child.pid}, log ${logFile})`);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (ok(['docker', 'info'])) return undefined;
    await sleep(1000);
  }
  let tail = '';
  try {
    tail = fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
  } catch {
    /* none */
  }
  return `dockerd did not answer within 60 s (log ${logFile}):\n${tail}`;
}

/** The local engine with the stand-in images; the engine targets (test/harness/targets.ts) build on it. */
export async function startDocker(): Promise<{ info: DockerInfo; runId: string; stop: () => Promise<void> }> {
  const runId = crypto.randomBytes(3).toString('hex');
  // Test workers start after the global setup and inherit this: their project names carry the run id.
  process.env[RUN_ENV] = runId;
  const unavailable = (reason: string) => {
    if (process.env.CI) throw new Error(`end-to-end tests need Docker, and CI must run them: ${reason}`);
    log(`end-to-end tests will not run: ${reason}`);
    return { info: { available: false, reason } satisfies DockerInfo, runId, stop: async () => undefined };
  };
  if (!ok(['sh', '-c', 'command -v docker'])) return unavailable('no `docker` binary on PATH (install docker.io)');
  if (!ok(['docker', 'info'])) {
    const why = await startDaemon();
    if (why) return unavailable(why);
  }
  let images: { postgresImage: string; odooImage: string };
  try {
    images = await ensureImages();
  } catch (err) {
    return unavailable(`could not build the stand-in images: ${(err as Error).message}`);
  }
  // Leftovers of runs that were killed before their cleanup; then this run is registered as alive.
  await removeLeftovers(undefined);
  registerRun(runId);
  return {
    info: { available: true, ...images },
    runId,
    stop: () => removeLeftovers(runId),
  };
}

/** Which test runs are alive: one file per run (its id) holding the pid of the vitest process. */
const RUNS_DIR = '/var/tmp/compose-tasks-test-runs';

function registerRun(runId: string): void {
  try {
    fs.mkdirSync(RUNS_DIR, { recursive: true });
    fs.writeFileSync(path.join(RUNS_DIR, runId), String(process.pid));
  } catch {
    /* cleanup of crashed runs is best effort */
  }
}

/** Ids of runs whose process is gone (killed before their own cleanup). */
export function deadRuns(): string[] {
  return safeList(RUNS_DIR).filter((id) => {
    let pid = 0;
    try {
      pid = Number(fs.readFileSync(path.join(RUNS_DIR, id), 'utf8'));
    } catch {
      return false; /* just removed */
    }
    try {
      process.kill(pid, 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH' || !pid;
    }
  });
}

/**
 * Removes what test projects left behind: every compose project of this run and of runs that died, and any
 * test project whose directory is gone. Images and the daemon stay; other live runs' projects are not touched.
 */
export async function removeLeftovers(runId: string | undefined, env: Record<string, string> = {}): Promise<void> {
  const e = { ...process.env, ...env };
  const dead = deadRuns();
  const runs = [...(runId ? [runId] : []), ...dead];
  const ofRun = (name: string) =>
    runs.some((id) => name.startsWith(`${TEST_PROJECT_PREFIX}${id}`) && name.length === TEST_PROJECT_PREFIX.length + id.length + 8);
  const r = spawnSync(
    'docker',
    [
      'ps',
      '-a',
      '--filter',
      'label=com.docker.compose.project',
      '--format',
      '{{.Label "com.docker.compose.project"}}\t{{.Label "com.docker.compose.project.working_dir"}}',
    ],
    { encoding: 'utf8', env: e },
  );
  const projects = new Set<string>();
  for (const line of (r.stdout ?? '').split('\n').filter(Boolean)) {
    const [name = '', dir = ''] = line.split('\t');
    if (!name.startsWith(TEST_PROJECT_PREFIX)) continue;
    if (ofRun(name) || (dir && !fs.existsSync(dir))) projects.add(name);
  }
  const v = spawnSync(
    'docker',
    ['volume', 'ls', '--filter', 'label=com.docker.compose.project', '--format', '{{.Label "com.docker.compose.project"}}'],
    { encoding: 'utf8', env: e },
  );
  for (const name of (v.stdout ?? '').split('\n').filter(Boolean)) if (ofRun(name)) projects.add(name);
  for (const name of projects) await removeComposeProject(name, env);
  for (const id of [...dead, ...(runId ? [runId] : [])]) fs.rmSync(path.join(RUNS_DIR, id), { force: true });
}
