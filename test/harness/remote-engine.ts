// A second Docker engine reached over SSH, the way `DOCKER_HOST=ssh://host` or a `docker context` reaches a VPS, one per
// test run: its own network namespace (its docker0 and iptables are its own), a dockerd entered into it with nsenter (only
// the net namespace: `ip netns exec` would hide the cgroups), and sshd on 127.0.0.1:<port> in its own mount namespace where
// /var/run/docker.sock is that engine's socket. Both the docker CLI (ssh connhelper) and docker-compose v1 (docker-py +
// paramiko) find the host through a Host alias in ~/.ssh/config, removed again at stop.
//
// The engine's data root lives under a fixed folder (one of a few slots, one run per slot at a time), so the stand-in
// images loaded into it stay there for the next run. Note: the "remote" host is this machine, so relative bind mounts
// (./addons, ./compose/odoo.conf), which compose resolves on the CLIENT's paths (docker/compose#8484), exist there too;
// on a real VPS those paths must exist on the server.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { exec, freePort, removeComposeProject, TEST_PROJECT_PREFIX } from './project.ts';

/** Data roots (images persist between runs): <BASE>/slot-<n>/data, locked by <BASE>/slot-<n>/lock while a run uses it. */
export const REMOTE_BASE = '/var/lib/compose-tasks/remote-engine';
const SLOTS = 4;
/** Per-run state (sockets, keys, pid files, logs): short paths, unix sockets have a 108-byte limit. */
const RUN_PREFIX = '/run/ct-remote-';
const SSH_MARK = 'compose-tasks test engine';

const log = (msg: string) => process.stderr.write(`[remote engine] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface RemoteEngine {
  /** The ssh alias in ~/.ssh/config (DOCKER_HOST=ssh://<alias>:<port>). */
  alias: string;
  dockerHost: string;
  /** unix://… of the second engine, for the harness's own calls (faster than ssh). */
  socketHost: string;
  dataRoot: string;
  stop(): Promise<void>;
}

function alive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

/** Ends a process this harness started (its pid file), only if it still runs the program it started: pids get reused. */
async function endProcess(pidFile: string, program: string, waitMs = 30_000): Promise<void> {
  const pid = readPid(pidFile);
  if (!pid || !alive(pid)) return;
  let cmd = '';
  try {
    cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return;
  }
  if (!cmd.includes(program)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + waitMs;
  while (alive(pid) && Date.now() < deadline) await sleep(200);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** What this machine lacks to run the remote engine (with the Debian packages to install), or undefined. */
function missingTools(): string | undefined {
  const need: Array<[string, string]> = [
    ['ip', 'iproute2'],
    ['nsenter', 'util-linux'],
    ['unshare', 'util-linux'],
    ['dockerd', 'docker.io'],
    ['/usr/sbin/sshd', 'openssh-server'],
    ['ssh', 'openssh-client'],
    ['ssh-keygen', 'openssh-client'],
  ];
  const missing = need.filter(([c]) => !has(c));
  if (missing.length)
    return `missing ${missing.map(([c]) => c).join(', ')} (apt-get install ${[...new Set(missing.map(([, p]) => p))].join(' ')})`;
  if (process.getuid?.() !== 0) return 'starting a second dockerd and sshd needs root';
  if (spawnSync('/usr/bin/python3', ['-c', 'import paramiko'], { stdio: 'ignore' }).status !== 0)
    return 'python3-paramiko is missing (docker-compose v1 reaches ssh:// engines through it: apt-get install python3-paramiko)';
  return undefined;
}

// --- ~/.ssh/config and ~/.ssh/known_hosts: marked blocks, added and removed under a lock -----------------------------------

const sshDir = () => path.join(os.homedir(), '.ssh');
const LOCK = '/var/tmp/compose-tasks-ssh-config.lock';

async function withLock<T>(fn: () => T): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      fs.mkdirSync(LOCK);
      fs.writeFileSync(path.join(LOCK, 'pid'), String(process.pid));
      break;
    } catch {
      if (!alive(readPid(path.join(LOCK, 'pid'))) && i > 5) fs.rmSync(LOCK, { recursive: true, force: true });
      if (i > 300) throw new Error(`${LOCK} is held for too long`);
      await sleep(100);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(LOCK, { recursive: true, force: true });
  }
}

const begin = (alias: string) => `# BEGIN ${SSH_MARK} ${alias}`;
const end = (alias: string) => `# END ${SSH_MARK} ${alias}`;

/** The file without the blocks of these aliases (all of ours when aliases is undefined). */
function withoutBlocks(text: string, aliases: string[] | undefined): string {
  const out: string[] = [];
  let skipping: string | undefined;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^# (BEGIN|END) ${SSH_MARK} (\\S+)$`).exec(line);
    if (m && (!aliases || aliases.includes(m[2]!))) {
      skipping = m[1] === 'BEGIN' ? m[2] : undefined;
      continue;
    }
    if (!skipping) out.push(line);
  }
  return out.join('\n');
}

function editFile(file: string, edit: (text: string) => string): void {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    /* new file */
  }
  const next = edit(text);
  if (next === text) return;
  if (!next.trim()) {
    fs.rmSync(file, { force: true });
    return;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, next, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/**
 * Our Host block goes first (ssh takes the first value it finds for an option) and ends with `Host *`, so options at
 * the top of the user's file stay global. The host key goes into known_hosts too: paramiko (compose v1) does not read
 * UserKnownHostsFile and would warn about an unknown key on every connection, which a user who has logged into the
 * server once never sees.
 */
function addSshBlocks(alias: string, port: number, identity: string, hostKeyLine: string): Promise<void> {
  return withLock(() => {
    const block = [
      begin(alias),
      `Host ${alias}`,
      '  HostName 127.0.0.1',
      `  Port ${port}`,
      '  User root',
      `  IdentityFile ${identity}`,
      '  IdentitiesOnly yes',
      '  StrictHostKeyChecking no',
      '  UserKnownHostsFile /dev/null',
      '  LogLevel ERROR',
      'Host *',
      end(alias),
    ].join('\n');
    editFile(path.join(sshDir(), 'config'), (t) => `${block}\n${withoutBlocks(t, [alias])}`);
    editFile(path.join(sshDir(), 'known_hosts'), (t) => {
      const rest = withoutBlocks(t, [alias]);
      return `${rest}${rest && !rest.endsWith('\n') ? '\n' : ''}${begin(alias)}\n[127.0.0.1]:${port} ${hostKeyLine}\n${end(alias)}\n`;
    });
  });
}

function removeSshBlocks(aliases: string[]): Promise<void> {
  if (!aliases.length) return Promise.resolve();
  return withLock(() => {
    for (const f of ['config', 'known_hosts']) editFile(path.join(sshDir(), f), (t) => withoutBlocks(t, aliases));
  });
}

// --- slots (persistent data roots) ---------------------------------------------------------------------------------------

function takeSlot(): string | undefined {
  for (let i = 0; i < SLOTS; i++) {
    const dir = path.join(REMOTE_BASE, `slot-${i}`);
    fs.mkdirSync(dir, { recursive: true });
    const lock = path.join(dir, 'lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
        return dir;
      } catch {
        // A run that was killed keeps its slot's lock: free it once its process is gone.
        const pid = readPid(lock);
        if (pid && alive(pid)) break;
        if (!pid && Date.now() - fs.statSync(lock).mtimeMs < 10_000) break; // being written
        fs.rmSync(lock, { force: true });
      }
    }
  }
  return undefined;
}

// --- leftovers of killed runs ----------------------------------------------------------------------------------------------

/** Stops what a run left behind (its sshd, dockerd, netns, ssh blocks, state folder), when its process is gone. */
async function removeDeadRuns(): Promise<void> {
  const dead: string[] = [];
  for (const name of fs.readdirSync('/run')) {
    if (!name.startsWith(path.basename(RUN_PREFIX))) continue;
    const dir = path.join('/run', name);
    const owner = readPid(path.join(dir, 'owner'));
    if (alive(owner)) continue;
    if (!owner && Date.now() - fs.statSync(dir).mtimeMs < 10_000) continue; // a run starting right now
    await endProcess(path.join(dir, 'sshd.pid'), 'sshd', 5000);
    await endProcess(path.join(dir, 'dockerd.pid'), 'dockerd');
    spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    fs.rmSync(dir, { recursive: true, force: true });
    dead.push(name);
  }
  // Namespaces whose state folder is gone (nothing runs in them any more).
  for (const line of (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '').split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (name.startsWith(path.basename(RUN_PREFIX)) && !fs.existsSync(path.join('/run', name))) {
      spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      dead.push(name);
    }
  }
  // Blocks in ~/.ssh of runs that are gone.
  let text = '';
  try {
    text = fs.readFileSync(path.join(sshDir(), 'config'), 'utf8');
  } catch {
    /* none */
  }
  for (const m of text.matchAll(new RegExp(`^# BEGIN ${SSH_MARK} (\\S+)$`, 'gm')))
    if (!fs.existsSync(path.join('/run', m[1]!))) dead.push(m[1]!);
  await removeSshBlocks([...new Set(dead)]);
}

/** Every test project in the engine at `host` (the engine is this run's alone: its slot is locked). */
export async function removeTestProjects(host: string): Promise<void> {
  const env = { DOCKER_HOST: host };
  const r = spawnSync(
    'docker',
    ['ps', '-a', '--filter', 'label=com.docker.compose.project', '--format', '{{.Label "com.docker.compose.project"}}'],
    { encoding: 'utf8', env: { ...process.env, ...env } },
  );
  const v = spawnSync(
    'docker',
    ['volume', 'ls', '--filter', 'label=com.docker.compose.project', '--format', '{{.Label "com.docker.compose.project"}}'],
    { encoding: 'utf8', env: { ...process.env, ...env } },
  );
  const names = new Set(
    `${r.stdout ?? ''}\n${v.stdout ?? ''}`
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s.startsWith(TEST_PROJECT_PREFIX)),
  );
  for (const name of names) await removeComposeProject(name, env);
}

// --- start ------------------------------------------------------------------------------------------------------------------

async function waitFor(what: string, check: () => Promise<boolean> | boolean, ms: number, logFile?: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(300);
  }
  let tail = '';
  try {
    if (logFile) tail = `:\n${fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-8).join('\n')}`;
  } catch {
    /* none */
  }
  throw new Error(`${what} did not come up within ${ms / 1000} s${logFile ? ` (log ${logFile})` : ''}${tail}`);
}

function spawnDetached(argv: string[], logFile: string): number {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
  child.unref();
  fs.closeSync(fd);
  return child.pid ?? 0;
}

/** Loads the stand-in images into the engine when it does not have them (by tag; the tags are content keys). */
async function loadImages(socketHost: string, images: string[]): Promise<void> {
  for (const image of images) {
    if (spawnSync('docker', ['-H', socketHost, 'image', 'inspect', image], { stdio: 'ignore' }).status === 0) continue;
    log(`docker save ${image} | docker load (into the remote engine)`);
    const r = await exec(['bash', '-c', 'set -o pipefail; docker save "$1" | docker -H "$2" load -q', 'bash', image, socketHost], {
      timeoutMs: 600_000,
    });
    if (r.code !== 0) throw new Error(`loading ${image} into the remote engine failed: ${r.stderr.trim()}`);
  }
  // Older builds of the same stand-ins (another recipe): nobody else uses this engine.
  const repos = new Set(images.map((t) => t.slice(0, t.lastIndexOf(':'))));
  const listed = spawnSync('docker', ['-H', socketHost, 'images', '--format', '{{.Repository}}:{{.Tag}}'], { encoding: 'utf8' });
  for (const tag of (listed.stdout ?? '').split('\n').filter(Boolean))
    if (!images.includes(tag) && repos.has(tag.slice(0, tag.lastIndexOf(':'))))
      spawnSync('docker', ['-H', socketHost, 'rmi', tag], { stdio: 'ignore' });
}

/** Starts this run's remote engine, or throws with the reason it cannot run here. */
export async function startRemoteEngine(runId: string, images: string[]): Promise<RemoteEngine> {
  const missing = missingTools();
  if (missing) throw new Error(missing);
  await removeDeadRuns();
  const name = `${path.basename(RUN_PREFIX)}${runId}`;
  const dir = `${RUN_PREFIX}${runId}`;
  const slot = takeSlot();
  if (!slot) throw new Error(`all ${SLOTS} remote engine slots under ${REMOTE_BASE} are in use by other test runs`);
  const dataRoot = path.join(slot, 'data');
  const sock = path.join(dir, 'docker.sock');
  const socketHost = `unix://${sock}`;
  const netns = `/var/run/netns/${name}`;
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (fs.existsSync(sock)) await removeTestProjects(socketHost).catch(() => undefined);
    await endProcess(path.join(dir, 'sshd.pid'), 'sshd', 5000);
    await endProcess(path.join(dir, 'dockerd.pid'), 'dockerd');
    spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    await removeSshBlocks([name]).catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(path.join(slot, 'lock'), { force: true });
  };

  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'owner'), String(process.pid));
    const started = Date.now();

    // The "host": its own network namespace, loopback up.
    const add = await exec(['ip', 'netns', 'add', name]);
    if (add.code !== 0) throw new Error(`ip netns add ${name}: ${add.stderr.trim()}`);
    const lo = await exec(['nsenter', `--net=${netns}`, 'ip', 'link', 'set', 'lo', 'up']);
    if (lo.code !== 0) throw new Error(`bringing lo up in ${name}: ${lo.stderr.trim()}`);

    // Its engine: dockerd inside that namespace (nsenter: only the net namespace), data root in the slot.
    const dockerLog = path.join(dir, 'dockerd.log');
    spawnDetached(
      [
        'nsenter',
        `--net=${netns}`,
        'dockerd',
        '--data-root',
        dataRoot,
        '--exec-root',
        path.join(dir, 'exec'),
        '--pidfile',
        path.join(dir, 'dockerd.pid'),
        '-H',
        socketHost,
      ],
      dockerLog,
    );
    await waitFor(
      'the remote dockerd',
      () => spawnSync('docker', ['-H', socketHost, 'info'], { stdio: 'ignore' }).status === 0,
      60_000,
      dockerLog,
    );
    await removeTestProjects(socketHost);
    await loadImages(socketHost, images);

    // Its sshd: key auth only, a per-run host key and client key.
    for (const k of ['host_key', 'id_ed25519']) {
      const g = await exec(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(dir, k)]);
      if (g.code !== 0) throw new Error(`ssh-keygen: ${g.stderr.trim()}`);
    }
    fs.copyFileSync(path.join(dir, 'id_ed25519.pub'), path.join(dir, 'authorized_keys'));
    const port = await freePort();
    const cfg = path.join(dir, 'sshd_config');
    fs.writeFileSync(
      cfg,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${path.join(dir, 'host_key')}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        // compose v2 opens several connections at once (one ssh session each).
        'MaxStartups 100',
        'MaxSessions 100',
        '',
      ].join('\n'),
    );
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation directory
    const sshLog = path.join(dir, 'sshd.log');
    // A mount namespace of its own where /var/run/docker.sock is the second engine's socket (private propagation).
    spawnDetached(
      [
        'unshare',
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind "$1" /var/run/docker.sock && exec /usr/sbin/sshd -D -e -f "$2"',
        'sh',
        sock,
        cfg,
      ],
      sshLog,
    );
    const hostKeyLine = fs.readFileSync(path.join(dir, 'host_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
    await addSshBlocks(name, port, path.join(dir, 'id_ed25519'), hostKeyLine);
    // The port goes into DOCKER_HOST as well: docker-compose v1 (docker-py) makes ssh://host into ssh://host:22 before
    // it reads ~/.ssh/config, so a Port there is never used by it (both its shell ssh and its paramiko path).
    const dockerHost = `ssh://${name}:${port}`;
    // What users run: the docker CLI through ssh reaches the second engine (its data root), not this machine's.
    let rootDir = '';
    await waitFor(
      `sshd on 127.0.0.1:${port}`,
      async () => {
        const r = await exec(['docker', 'info', '--format', '{{.DockerRootDir}}'], {
          env: { ...process.env, DOCKER_HOST: dockerHost },
          timeoutMs: 30_000,
        });
        rootDir = r.stdout.trim();
        // docker info can exit 0 with the server part empty while the connection is not there yet.
        return r.code === 0 && rootDir !== '';
      },
      30_000,
      sshLog,
    );
    if (rootDir !== dataRoot) throw new Error(`DOCKER_HOST=${dockerHost} docker info shows Docker Root Dir ${rootDir}, not ${dataRoot}`);
    log(`${dockerHost} ready in ${((Date.now() - started) / 1000).toFixed(1)} s (data root ${dataRoot}, sshd on 127.0.0.1:${port})`);
    return { alias: name, dockerHost, socketHost, dataRoot, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
