// Compose v2 (the `docker compose` CLI plugin) for the e2e matrix, beside the system's Compose v1: the static binary of
// Debian trixie's `docker-compose` package, fetched with apt on private lists (the system's apt state is never touched),
// cached by package version, and handed to the docker CLI through a per-run DOCKER_CONFIG folder.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { aptMirror } from './docker.ts';
import { exec } from './project.ts';

/** Cached binaries: <CACHE_DIR>/<package version>/docker-compose. */
export const COMPOSE_V2_CACHE = '/var/cache/compose-tasks/compose-v2';
const PLUGIN_IN_DEB = 'usr/libexec/docker/cli-plugins/docker-compose';

const log = (msg: string) => process.stderr.write(`[compose v2] ${msg}\n`);

async function must(argv: string[], what: string, cwd?: string): Promise<string> {
  const r = await exec(argv, { cwd, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n')}`);
  return r.stdout;
}

/** Versions compare as dotted numbers (2.26.1-4 < 2.27.0-1); the newest cached one that runs wins. */
function newestFirst(a: string, b: string): number {
  const n = (v: string) => v.split(/[.+~-]/).map((x) => Number.parseInt(x, 10) || 0);
  const [x, y] = [n(a), n(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (y[i] ?? 0) - (x[i] ?? 0);
  return 0;
}

async function cached(): Promise<{ binary: string; version: string } | undefined> {
  let versions: string[] = [];
  try {
    versions = fs.readdirSync(COMPOSE_V2_CACHE).sort(newestFirst);
  } catch {
    return undefined;
  }
  for (const version of versions) {
    const binary = path.join(COMPOSE_V2_CACHE, version, 'docker-compose');
    if (!fs.existsSync(binary)) continue;
    const r = await exec([binary, 'version', '--short'], { timeoutMs: 30_000 });
    if (r.code === 0 && /^v?2\./.test(r.stdout.trim())) return { binary, version };
  }
  return undefined;
}

/** apt-get on a private sources file (trixie, on the mirror apt already uses), private lists and cache. */
async function download(): Promise<{ binary: string; version: string }> {
  if (process.getuid?.() !== 0) throw new Error('fetching Compose v2 with apt-get needs root');
  const t = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-compose-v2-'));
  try {
    for (const d of ['lists/partial', 'parts', 'cache/archives/partial', 'x']) fs.mkdirSync(path.join(t, d), { recursive: true });
    const mirror = aptMirror();
    fs.writeFileSync(
      path.join(t, 'parts/trixie.sources'),
      `Types: deb\nURIs: ${mirror}\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
    );
    const o = [
      ['Dir::Etc::SourceList', '/dev/null'],
      ['Dir::Etc::SourceParts', path.join(t, 'parts')],
      ['Dir::State::Lists', path.join(t, 'lists')],
      ['Dir::Cache', path.join(t, 'cache')],
      // The private folders are root's: no need to drop to _apt (it could not write them).
      ['APT::Sandbox::User', 'root'],
    ].flatMap(([k, v]) => ['-o', `${k}=${v}`]);
    log(`apt-get update (trixie, ${mirror}) on private lists`);
    await must(['apt-get', ...o, '-q', 'update'], 'apt-get update (trixie)');
    await must(['apt-get', ...o, '-q', 'download', 'docker-compose'], 'apt-get download docker-compose (trixie)', t);
    const deb = fs.readdirSync(t).find((f) => /^docker-compose_.*\.deb$/.test(f));
    if (!deb) throw new Error('apt-get download docker-compose left no .deb');
    const version = (await must(['dpkg-deb', '-f', path.join(t, deb), 'Version'], 'dpkg-deb -f')).trim();
    if (!/^2\./.test(version)) throw new Error(`trixie's docker-compose is ${version}, not Compose v2`);
    await must(['dpkg-deb', '-x', path.join(t, deb), path.join(t, 'x')], 'dpkg-deb -x');
    const dir = path.join(COMPOSE_V2_CACHE, version);
    fs.mkdirSync(dir, { recursive: true });
    // Copied under a temporary name, then renamed: a concurrent run never sees half a binary.
    const tmp = path.join(dir, `.docker-compose.${process.pid}`);
    fs.copyFileSync(path.join(t, 'x', PLUGIN_IN_DEB), tmp);
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, path.join(dir, 'docker-compose'));
    log(`cached ${version} in ${dir}`);
    return { binary: path.join(dir, 'docker-compose'), version };
  } finally {
    fs.rmSync(t, { recursive: true, force: true });
  }
}

/** The Compose v2 binary: from the cache when one is there (no apt call at all), else downloaded once. */
export async function ensureComposeV2(): Promise<{ binary: string; version: string }> {
  return (await cached()) ?? (await download());
}

/**
 * A DOCKER_CONFIG folder for this run: cli-plugins/docker-compose (a symlink to the cached binary), plus the user's
 * own config.json and contexts/ when ~/.docker has them, so `docker context` settings keep working under it.
 */
export function makeDockerConfig(binary: string, dir: string, home = os.homedir()): string {
  fs.mkdirSync(path.join(dir, 'cli-plugins'), { recursive: true, mode: 0o700 });
  const plugin = path.join(dir, 'cli-plugins/docker-compose');
  fs.rmSync(plugin, { force: true });
  fs.symlinkSync(binary, plugin);
  const own = process.env.DOCKER_CONFIG || path.join(home, '.docker');
  for (const f of ['config.json', 'contexts']) {
    const src = path.join(own, f);
    if (fs.existsSync(src)) fs.cpSync(src, path.join(dir, f), { recursive: true });
  }
  return dir;
}

/** Checks what users would run: `docker compose version` through this DOCKER_CONFIG prints 2.x. */
export async function checkComposeV2(dockerConfig: string): Promise<string> {
  const r = await exec(['docker', 'compose', 'version', '--short'], {
    env: { ...process.env, DOCKER_CONFIG: dockerConfig },
    timeoutMs: 30_000,
  });
  const v = r.stdout.trim();
  if (r.code !== 0 || !/^v?2\./.test(v))
    throw new Error(`DOCKER_CONFIG=${dockerConfig} docker compose version: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
  return v;
}
