// `npm test` runs this first: are the system programs the test suite drives here? Where apt-get can run (root on
// Debian/Ubuntu) it installs what is missing; elsewhere it stops with one message saying what to install.
// Pieces only the end-to-end tests need may be missing outside CI (those files then report themselves skipped).
// Fast when nothing is missing: file and PATH lookups only, no apt and no docker calls.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PG_BIN = '/usr/lib/postgresql/15/bin';

/** What the checks may ask of the machine (a fake in the unit tests). */
export interface Probe {
  /** An executable of that name on PATH (or in the sbin folders, which a non-root PATH may lack). */
  command(name: string): boolean;
  /** A file exists (and, with `nonEmpty`, is not empty). */
  file(file: string, nonEmpty?: boolean): boolean;
  /** The system python3 (/usr/bin/python3, which Debian's python3-* packages and docker-compose use) finds the module. */
  pythonModule(name: string): boolean;
}

export interface Prerequisite {
  /** What is missing, as a user would name it. */
  what: string;
  /** The Debian/Ubuntu package that provides it. */
  pkg: string;
  /** Why the tests need it (the install line says this). */
  why: string;
  /** Only the end-to-end tests need it: outside CI it may be missing (those tests are then skipped). */
  e2eOnly: boolean;
  present(probe: Probe): boolean;
}

const cmds =
  (...names: string[]) =>
  (p: Probe) =>
    names.every((n) => p.command(n));
const files =
  (...paths: string[]) =>
  (p: Probe) =>
    paths.every((f) => p.file(f));

export const PREREQUISITES: readonly Prerequisite[] = [
  {
    what: `PostgreSQL 15 server (${PG_BIN}/initdb, pg_ctl, postgres, pgbench)`,
    pkg: 'postgresql-15',
    why: 'the integration tests run a throwaway PostgreSQL 15 cluster',
    e2eOnly: false,
    present: files(...['initdb', 'pg_ctl', 'postgres', 'pgbench'].map((b) => `${PG_BIN}/${b}`)),
  },
  {
    what: `PostgreSQL 15 client tools (${PG_BIN}/pg_dump, pg_restore, psql)`,
    pkg: 'postgresql-client-15',
    why: 'the database, backup and restore tests run pg_dump, pg_restore and psql 15',
    e2eOnly: false,
    present: files(...['pg_dump', 'pg_restore', 'psql'].map((b) => `${PG_BIN}/${b}`)),
  },
  {
    what: 'the aws CLI (aws)',
    pkg: 'awscli',
    why: 'the backup tests upload to a local S3 server with the real aws CLI',
    e2eOnly: false,
    present: cmds('aws'),
  },
  { what: 'flock', pkg: 'util-linux', why: 'the cron tests run backups under flock', e2eOnly: false, present: cmds('flock') },
  {
    what: 'cron and crontab',
    pkg: 'cron',
    why: 'the cron tests install and read crontab entries',
    e2eOnly: false,
    present: cmds('cron', 'crontab'),
  },
  {
    what: 'CA certificates (/etc/ssl/certs/ca-certificates.crt)',
    pkg: 'ca-certificates',
    why: 'TLS clients (aws CLI, debootstrap) verify certificates with them',
    e2eOnly: false,
    present: (p) => p.file('/etc/ssl/certs/ca-certificates.crt', true),
  },
  { what: 'zsh', pkg: 'zsh', why: 'the completion tests run the generated zsh script in zsh', e2eOnly: false, present: cmds('zsh') },
  { what: 'fish', pkg: 'fish', why: 'the completion tests run the generated fish script in fish', e2eOnly: false, present: cmds('fish') },
  {
    what: 'Docker (the docker client and the dockerd engine)',
    pkg: 'docker.io',
    why: 'the end-to-end tests need a Docker engine',
    e2eOnly: true,
    present: cmds('docker', 'dockerd'),
  },
  {
    what: 'Compose v1 (docker-compose)',
    pkg: 'docker-compose',
    why: 'the end-to-end tests drive the stack with Compose v1',
    e2eOnly: true,
    present: cmds('docker-compose'),
  },
  {
    what: 'debootstrap',
    pkg: 'debootstrap',
    why: 'the end-to-end tests build their stand-in images from a Debian base',
    e2eOnly: true,
    present: cmds('debootstrap'),
  },
  {
    what: 'busybox (static)',
    pkg: 'busybox-static',
    why: 'the end-to-end stand-in images use busybox',
    e2eOnly: true,
    present: (p) => p.command('busybox') || p.file('/bin/busybox'),
  },
  {
    what: 'the SSH server (sshd)',
    pkg: 'openssh-server',
    why: 'the remote-engine end-to-end tests reach a second engine over SSH',
    e2eOnly: true,
    present: cmds('sshd'),
  },
  {
    what: 'the SSH client (ssh)',
    pkg: 'openssh-client',
    why: 'the remote-engine end-to-end tests use DOCKER_HOST=ssh://',
    e2eOnly: true,
    present: cmds('ssh'),
  },
  {
    what: 'ip (network namespaces)',
    pkg: 'iproute2',
    why: 'the remote-engine end-to-end tests give the second engine its own network namespace',
    e2eOnly: true,
    present: cmds('ip'),
  },
  {
    what: 'nsenter and unshare',
    pkg: 'util-linux',
    why: 'the remote-engine end-to-end tests start the second engine and sshd in their own namespaces',
    e2eOnly: true,
    present: cmds('nsenter', 'unshare'),
  },
  {
    what: 'paramiko for python3',
    pkg: 'python3-paramiko',
    why: 'Compose v1 reaches an ssh:// engine through paramiko',
    e2eOnly: true,
    present: (p) => p.pythonModule('paramiko'),
  },
];

export interface Environment {
  /** CI=true (or any non-empty CI): every prerequisite is required. */
  ci: boolean;
  /** Root on Debian/Ubuntu with apt-get on PATH. */
  canInstall: boolean;
  /** Why it cannot install (for the message), when it cannot. */
  cannotInstallBecause?: string;
}

export type Plan =
  | { action: 'ok' }
  /** Install these packages (one apt-get install); `lines` say what and why, one per package. */
  | { action: 'install'; packages: string[]; lines: string[] }
  /** Continue, with a one-line warning: only end-to-end pieces are missing and cannot be installed here. */
  | { action: 'warn'; message: string }
  /** Stop (exit non-zero) with this message. */
  | { action: 'fail'; message: string };

const unique = (xs: string[]) => [...new Set(xs)];

/** The command that installs these packages (shown when it cannot be run here). */
export function installCommand(packages: string[]): string {
  return `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${unique(packages).join(' ')}`;
}

/** What to do, given what is missing (pure: the unit tests drive it with a fake probe). */
export function plan(missing: readonly Prerequisite[], env: Environment): Plan {
  if (missing.length === 0) return { action: 'ok' };
  if (env.canInstall) {
    const byPkg = new Map<string, Prerequisite[]>();
    for (const m of missing) byPkg.set(m.pkg, [...(byPkg.get(m.pkg) ?? []), m]);
    const lines = [...byPkg].map(([pkg, ms]) => `installing ${pkg}: ${unique(ms.map((m) => m.why)).join('; ')}`);
    return { action: 'install', packages: [...byPkg.keys()], lines };
  }
  const required = missing.filter((m) => env.ci || !m.e2eOnly);
  const because = env.cannotInstallBecause ? ` (${env.cannotInstallBecause})` : '';
  if (required.length === 0) {
    const pkgs = unique(missing.map((m) => m.pkg));
    return {
      action: 'warn',
      message:
        `warning: the end-to-end tests will be skipped: missing ${missing.map((m) => m.what).join(', ')}` +
        `; install with: ${installCommand(pkgs)}`,
    };
  }
  const listed = env.ci ? missing : required;
  const message = [
    `npm test cannot run: missing system prerequisites, which it cannot install here${because}:`,
    ...listed.map((m) => `  - ${m.what}: Debian/Ubuntu package ${m.pkg} (${m.why})`),
    ...(env.ci ? [] : missing.filter((m) => m.e2eOnly).map((m) => `  - (end-to-end only, optional) ${m.what}: ${m.pkg}`)),
    'Install them (Debian/Ubuntu; elsewhere the same programs from your system) with:',
    `  ${installCommand(listed.map((m) => m.pkg))}`,
  ].join('\n');
  return { action: 'fail', message };
}

export function missingPrerequisites(probe: Probe, all: readonly Prerequisite[] = PREREQUISITES): Prerequisite[] {
  return all.filter((p) => !p.present(probe));
}

/** The real machine: PATH lookups and stat calls; python3 only for the paramiko lookup (find_spec, no import). */
export function systemProbe(env: NodeJS.ProcessEnv = process.env): Probe {
  const dirs = unique([...(env.PATH ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin']);
  const executable = (f: string) => {
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return fs.statSync(f).isFile();
    } catch {
      return false;
    }
  };
  return {
    command: (name) => dirs.some((d) => executable(path.join(d, name))),
    file: (f, nonEmpty) => {
      try {
        const st = fs.statSync(f);
        return st.isFile() && (!nonEmpty || st.size > 0);
      } catch {
        return false;
      }
    },
    pythonModule: (name) =>
      spawnSync(
        fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3',
        ['-c', `import importlib.util, sys; sys.exit(importlib.util.find_spec(${JSON.stringify(name)}) is None)`],
        {
          stdio: 'ignore',
          timeout: 10_000,
        },
      ).status === 0,
  };
}

/** Root on Debian/Ubuntu with apt-get on PATH? */
export function installEnvironment(probe: Probe, env: NodeJS.ProcessEnv = process.env): Environment {
  const ci = Boolean(env.CI);
  let osRelease = '';
  try {
    osRelease = fs.readFileSync('/etc/os-release', 'utf8');
  } catch {
    /* not Linux, or no os-release */
  }
  const ids = [...osRelease.matchAll(/^(?:ID|ID_LIKE)="?([^"\n]*)"?$/gm)].flatMap((m) => m[1]!.split(/\s+/));
  const debian = ids.includes('debian') || ids.includes('ubuntu');
  const because = !debian
    ? 'not Debian or Ubuntu'
    : process.getuid?.() !== 0
      ? 'not root'
      : !probe.command('apt-get')
        ? 'no apt-get on PATH'
        : undefined;
  return { ci, canInstall: because === undefined, ...(because ? { cannotInstallBecause: because } : {}) };
}

function aptGet(args: string[]): number {
  const r = spawnSync('apt-get', args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return r.status ?? 1;
}

/** Checks, installs where it can, and returns the exit code for `npm test` (0: go on with vitest). */
export function main(): number {
  const say = (s: string) => process.stderr.write(`[prerequisites] ${s}\n`);
  const probe = systemProbe();
  const env = installEnvironment(probe);
  const first = plan(missingPrerequisites(probe), env);
  if (first.action === 'ok') return 0;
  if (first.action === 'warn') {
    say(first.message);
    return 0;
  }
  if (first.action === 'fail') {
    process.stderr.write(`${first.message}\n`);
    return 1;
  }
  for (const line of first.lines) say(line);
  if (aptGet(['update', '-q']) !== 0 || aptGet(['install', '-y', '-q', '--no-install-recommends', ...first.packages]) !== 0) {
    process.stderr.write(`apt-get could not install ${first.packages.join(' ')}: see its output above\n`);
    return 1;
  }
  // What apt-get installed must now be there; anything still missing is decided as if it could not install.
  const after = plan(missingPrerequisites(probe), {
    ...env,
    canInstall: false,
    cannotInstallBecause: 'apt-get ran, yet these are still missing',
  });
  if (after.action === 'fail') {
    process.stderr.write(`${after.message}\n`);
    return 1;
  }
  if (after.action === 'warn') say(after.message);
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main();
