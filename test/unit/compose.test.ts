// Compose argv builders (exact arrays for v1 and v2), file selection, flavor detection and `compose config` parsing.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  compose,
  composeBase,
  composeFiles,
  detectFlavor,
  effectiveComposeFiles,
  cannotRunReason,
  explainDockerError,
  parseConfig,
  type ComposeProject,
} from '../../scripts/tools/compose.ts';
import { CommandError, ExitCode, TaskError } from '../../scripts/core/errors.ts';
import type { Cmd, Runner } from '../../scripts/core/runner.ts';

const v2: ComposeProject = { flavor: 'v2', root: '/srv/app', files: ['compose/compose.yaml', 'compose/compose.dev.yaml'] };
const v1: ComposeProject = { flavor: 'v1', root: '/srv/app', files: ['compose/compose.yaml', 'compose/compose.dev.yaml'] };
const V2 = ['docker', 'compose', '--project-directory', '/srv/app', '-f', 'compose/compose.yaml', '-f', 'compose/compose.dev.yaml'];
const V1 = ['docker-compose', '--project-directory', '/srv/app', '-f', 'compose/compose.yaml', '-f', 'compose/compose.dev.yaml'];

describe('compose argv', () => {
  it('base: v2 is `docker compose`, v1 `docker-compose`; no -f when COMPOSE_FILE decides', () => {
    expect(composeBase(v2)).toEqual(V2);
    expect(composeBase(v1)).toEqual(V1);
    expect(composeBase({ flavor: 'v1', root: '/srv/app', files: [] })).toEqual(['docker-compose', '--project-directory', '/srv/app']);
  });

  it('up: --wait only on v2 (v1 has none, the tasks poll instead)', () => {
    expect(compose.up(v2, { wait: true })).toEqual([...V2, 'up', '-d', '--wait']);
    expect(compose.up(v1, { wait: true })).toEqual([...V1, 'up', '-d']);
    // WAIT_TIMEOUT bounds v2's own wait too (v1 polls with it).
    expect(compose.up(v2, { wait: true, waitTimeout: 45 })).toEqual([...V2, 'up', '-d', '--wait', '--wait-timeout', '45']);
    expect(compose.up(v1, { wait: true, waitTimeout: 45 })).toEqual([...V1, 'up', '-d']);
    expect(compose.up(v2)).toEqual([...V2, 'up', '-d']);
    expect(compose.up(v1, { services: ['odoo'], noDeps: true, forceRecreate: true })).toEqual([
      ...V1,
      'up',
      '-d',
      '--no-deps',
      '--force-recreate',
      'odoo',
    ]);
    expect(compose.up(v2, { build: true, profiles: ['tools'], services: ['db', 'adminer'] })).toEqual([
      ...V2,
      '--profile',
      'tools',
      'up',
      '-d',
      '--build',
      'db',
      'adminer',
    ]);
  });

  it('down keeps volumes unless asked', () => {
    expect(compose.down(v1)).toEqual([...V1, 'down', '--remove-orphans']);
    expect(compose.down(v2, { volumes: true })).toEqual([...V2, 'down', '--remove-orphans', '--volumes']);
  });

  it('stop / start / restart / build / pull', () => {
    expect(compose.stop(v1)).toEqual([...V1, 'stop']);
    expect(compose.start(v2, ['db'])).toEqual([...V2, 'start', 'db']);
    expect(compose.restart(v1, ['odoo'])).toEqual([...V1, 'restart', 'odoo']);
    expect(compose.build(v2, ['odoo'], { pull: true })).toEqual([...V2, 'build', '--pull', 'odoo']);
    expect(compose.pull(v2)).toEqual([...V2, 'pull', '--ignore-buildable']);
    expect(compose.pull(v1, ['db'])).toEqual([...V1, 'pull', '--ignore-pull-failures', 'db']);
  });

  it('exec adds -T (no TTY: binary-safe, works under cron) unless a terminal is wanted', () => {
    expect(compose.exec(v1, 'db', ['pg_dump', '-Fc', 'odoo'])).toEqual([...V1, 'exec', '-T', 'db', 'pg_dump', '-Fc', 'odoo']);
    expect(compose.exec(v2, 'odoo', ['bash'], { tty: true })).toEqual([...V2, 'exec', 'odoo', 'bash']);
    expect(compose.exec(v2, 'odoo', ['tar', '-C', '/var/lib/odoo', '-c', '.'], { user: 'root', workdir: '/tmp', env: { A: '1' } })).toEqual(
      [...V2, 'exec', '-T', '--user', 'root', '--workdir', '/tmp', '-e', 'A=1', 'odoo', 'tar', '-C', '/var/lib/odoo', '-c', '.'],
    );
  });

  it('a command is data: arguments with spaces and quotes stay single arguments', () => {
    const argv = compose.exec(v1, 'db', ['psql', '-c', "select 'a b'; -- x"]);
    expect(argv.slice(-3)).toEqual(['psql', '-c', "select 'a b'; -- x"]);
  });

  it('run: --rm and -T by default, no deps, entrypoint, volumes', () => {
    expect(compose.run(v1, 'odoo', ['odoo', '--stop-after-init'])).toEqual([
      ...V1,
      'run',
      '--rm',
      '-T',
      'odoo',
      'odoo',
      '--stop-after-init',
    ]);
    expect(
      compose.run(v2, 'odoo', ['-c', 'ls'], {
        rm: false,
        tty: true,
        noDeps: true,
        user: '101:101',
        entrypoint: 'sh',
        volumes: ['/tmp/x:/x:ro'],
      }),
    ).toEqual([...V2, 'run', '--no-deps', '--user', '101:101', '--entrypoint', 'sh', '-v', '/tmp/x:/x:ro', 'odoo', '-c', 'ls']);
    expect(compose.run(v2, 'odoo', [], { entrypoint: '' })).toEqual([...V2, 'run', '--rm', '-T', '--entrypoint', '', 'odoo']);
  });

  it('logs: no colours, follow, tail, timestamps, one service', () => {
    expect(compose.logs(v1)).toEqual([...V1, 'logs', '--no-color']);
    expect(compose.logs(v2, { services: ['odoo'], follow: true, tail: '50', timestamps: true })).toEqual([
      ...V2,
      'logs',
      '--no-color',
      '--follow',
      '--tail',
      '50',
      '--timestamps',
      'odoo',
    ]);
  });

  it('config: v2 JSON with every profile; v1 YAML (it has no --format)', () => {
    expect(compose.config(v2)).toEqual([...V2, '--profile', '*', 'config', '--format', 'json']);
    expect(compose.config(v1)).toEqual([...V1, 'config']);
  });

  it('psIds: container ids; --all (stopped too) only exists on v2, v1 lists stopped ones anyway', () => {
    expect(compose.psIds(v2, ['db'], true)).toEqual([...V2, 'ps', '-q', '--all', 'db']);
    expect(compose.psIds(v1, ['db'], true)).toEqual([...V1, 'ps', '-q', 'db']);
    expect(compose.psIds(v2)).toEqual([...V2, 'ps', '-q']);
  });

  it('version', () => {
    expect(compose.version('v2')).toEqual(['docker', 'compose', 'version', '--short']);
    expect(compose.version('v1')).toEqual(['docker-compose', 'version', '--short']);
  });
});

describe('which compose files apply', () => {
  const base = ['compose/compose.yaml'];
  const dev = ['compose/compose.dev.yaml'];
  it('development (or no APP_ENV) adds the dev override; staging and production do not', () => {
    expect(composeFiles({ APP_ENV: 'development' }, base, dev)).toEqual([...base, ...dev]);
    expect(composeFiles({}, base, dev)).toEqual([...base, ...dev]);
    expect(composeFiles({ APP_ENV: 'production' }, base, dev)).toEqual(base);
    expect(composeFiles({ APP_ENV: 'staging' }, base, dev)).toEqual(base);
  });
  it('COMPOSE_FILE wins: no -f at all, compose reads the variable itself', () => {
    expect(composeFiles({ APP_ENV: 'development', COMPOSE_FILE: 'a.yaml:b.yaml' }, base, dev)).toEqual([]);
    expect(composeFiles({ APP_ENV: 'production', COMPOSE_FILE: 'a.yaml' }, base, dev)).toEqual([]);
  });
  it('the files compose will read: -f files, else COMPOSE_FILE split on the path separator, relative to the root', () => {
    expect(effectiveComposeFiles({ root: '/srv/app', files: ['compose/compose.yaml'] }, {})).toEqual(['/srv/app/compose/compose.yaml']);
    expect(effectiveComposeFiles({ root: '/srv/app', files: [] }, { COMPOSE_FILE: 'compose/compose.yaml:/etc/extra.yaml' })).toEqual([
      '/srv/app/compose/compose.yaml',
      '/etc/extra.yaml',
    ]);
    expect(effectiveComposeFiles({ root: '/srv/app', files: [] }, { COMPOSE_FILE: 'a.yaml;b.yaml', COMPOSE_PATH_SEPARATOR: ';' })).toEqual([
      '/srv/app/a.yaml',
      '/srv/app/b.yaml',
    ]);
  });
});

describe('parsing `compose config`', () => {
  // What docker-compose 1.29 prints for the shipped files (secrets replaced).
  const v1Yaml = `services:
  adminer:
    depends_on:
      db:
        condition: service_started
    image: adminer:4
    ports:
    - 127.0.0.1:8080:8080/tcp
    profiles:
    - tools
  db:
    healthcheck:
      interval: 3s
      test:
      - CMD-SHELL
      - pg_isready -q
    image: postgres:15
    ports:
    - 127.0.0.1:5432:5432/tcp
  odoo:
    build:
      context: /srv/app/odoo
    image: odoo:17
    ports:
    - 127.0.0.1:8069:8069/tcp
version: '3.9'
volumes:
  db-data: {}
`;
  // What docker compose v2 prints with --format json (long port syntax, a disabled healthcheck).
  const v2Json = JSON.stringify({
    name: 'odoo',
    services: {
      db: {
        image: 'postgres:15',
        healthcheck: { test: ['CMD-SHELL', 'pg_isready'] },
        ports: [{ mode: 'ingress', host_ip: '127.0.0.1', target: 5432, published: '5432', protocol: 'tcp' }],
      },
      worker: { build: { context: '/srv/app/worker' }, healthcheck: { disable: true } },
      adminer: { image: 'adminer:4', profiles: ['tools'] },
    },
  });

  it('v1 YAML: services with image, build, profiles, ports and healthcheck', async () => {
    expect(await parseConfig(v1Yaml, 'v1')).toEqual([
      {
        name: 'adminer',
        image: 'adminer:4',
        build: false,
        profiles: ['tools'],
        ports: ['127.0.0.1:8080:8080/tcp'],
        healthcheck: false,
        binds: [],
      },
      { name: 'db', image: 'postgres:15', build: false, profiles: [], ports: ['127.0.0.1:5432:5432/tcp'], healthcheck: true, binds: [] },
      { name: 'odoo', image: 'odoo:17', build: true, profiles: [], ports: ['127.0.0.1:8069:8069/tcp'], healthcheck: false, binds: [] },
    ]);
  });

  it('v2 JSON: long port syntax, disabled healthcheck counts as none', async () => {
    expect(await parseConfig(v2Json, 'v2')).toEqual([
      { name: 'db', image: 'postgres:15', build: false, profiles: [], ports: ['5432:5432'], healthcheck: true, binds: [] },
      { name: 'worker', image: undefined, build: true, profiles: [], ports: [], healthcheck: false, binds: [] },
      { name: 'adminer', image: 'adminer:4', build: false, profiles: ['tools'], ports: [], healthcheck: false, binds: [] },
    ]);
  });

  it('an empty configuration has no services', async () => {
    expect(await parseConfig('{}', 'v2')).toEqual([]);
  });
});

/** A probe that answers from a table (argv joined by spaces → exit code), and records what it ran. */
function fakeProbe(codes: Record<string, number>): Runner & { ran: string[] } {
  const ran: string[] = [];
  return {
    ran,
    dryRun: false,
    env: {},
    signal: undefined,
    log: undefined as unknown as Runner['log'],
    display: (c: Cmd) => c.argv.join(' '),
    async run(c: Cmd) {
      const key = c.argv.join(' ');
      ran.push(key);
      const code = codes[key] ?? 127;
      if (code !== 0) throw new CommandError(key, c.argv, code, 'nope');
      return { code: 0, stdout: '1.29.2\n', stderr: '', dryRun: false } as Awaited<ReturnType<Runner['run']>>;
    },
  };
}

describe('detecting the compose flavor', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'compose-unit-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const bin = fs.mkdtempSync(path.join(tmp, 'bin-'));
  fs.writeFileSync(path.join(bin, 'docker'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const PATH = bin;

  it('COMPOSE_CMD forces one without probing', async () => {
    const probe = fakeProbe({});
    expect(await detectFlavor(probe, { PATH, COMPOSE_CMD: 'docker-compose' })).toBe('v1');
    expect(await detectFlavor(probe, { PATH, COMPOSE_CMD: 'docker compose' })).toBe('v2');
    expect(probe.ran).toEqual([]);
  });

  it('an unknown COMPOSE_CMD is an invalid environment (exit 4)', async () => {
    const err = await detectFlavor(fakeProbe({}), { PATH, COMPOSE_CMD: 'podman-compose' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.invalidEnv);
    expect((err as TaskError).message).toContain('COMPOSE_CMD');
  });

  it('prefers v2, falls back to v1, and caches the answer', async () => {
    expect(await detectFlavor(fakeProbe({ 'docker compose version --short': 0, 'docker-compose version --short': 0 }), { PATH })).toBe(
      'v2',
    );
    const cache = fs.mkdtempSync(path.join(tmp, 'cache-'));
    const probe = fakeProbe({ 'docker-compose version --short': 0 });
    expect(await detectFlavor(probe, { PATH }, cache)).toBe('v1');
    expect(probe.ran).toEqual(['docker compose version --short', 'docker-compose version --short']);
    const again = fakeProbe({});
    expect(await detectFlavor(again, { PATH }, cache)).toBe('v1');
    expect(again.ran).toEqual([]);
  });

  it('neither flavor: one clear prerequisite error (exit 6)', async () => {
    const err = await detectFlavor(fakeProbe({}), { PATH }).catch((e: unknown) => e);
    expect((err as TaskError).exitCode).toBe(ExitCode.prerequisite);
    expect((err as TaskError).message).toMatch(/Docker Compose not found/);
  });

  it('no docker on PATH: says Docker is not installed (exit 6), even when COMPOSE_CMD is set', async () => {
    const empty = fs.mkdtempSync(path.join(tmp, 'empty-'));
    const err = await detectFlavor(fakeProbe({ 'docker-compose version --short': 0 }), {
      PATH: empty,
      COMPOSE_CMD: 'docker-compose',
    }).catch((e: unknown) => e);
    expect((err as TaskError).exitCode).toBe(ExitCode.prerequisite);
    expect((err as TaskError).message).toBe('Docker is not installed: no `docker` command on PATH');
  });

  it('a daemon that is down becomes one line naming it (exit 6); other failures pass through', () => {
    const down = new CommandError(
      'docker-compose ps',
      ['docker-compose', 'ps'],
      1,
      "Couldn't connect to Docker daemon at http+docker://localhost - is it running?",
    );
    const e = explainDockerError(down) as TaskError;
    expect(e.message).toBe('the Docker engine is not running');
    expect(e.exitCode).toBe(ExitCode.prerequisite);
    const v1Down = new CommandError(
      'docker-compose ps',
      ['docker-compose', 'ps'],
      1,
      'docker.errors.DockerException: Error while fetching server API version: ' +
        "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))",
    );
    expect((explainDockerError(v1Down) as TaskError).message).toBe('the Docker engine is not running');
    const v2Down = new CommandError(
      'docker compose ps',
      ['docker', 'compose', 'ps'],
      1,
      'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?',
    );
    expect((explainDockerError(v2Down) as TaskError).exitCode).toBe(ExitCode.prerequisite);
    const denied = new CommandError(
      'docker compose ps',
      ['docker', 'compose', 'ps'],
      1,
      'permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock',
    );
    expect((explainDockerError(denied) as TaskError).message).toBe('no permission to use the Docker engine');
    const other = new CommandError('docker-compose ps', ['docker-compose', 'ps'], 1, 'no such service: x');
    expect(explainDockerError(other)).toBe(other);
  });
});

describe('cannotRunReason (a read-only command that could not run at all, for a dry run)', () => {
  const exec = (stderr: string, code = 1) =>
    new CommandError('compose exec', [...V2, 'exec', '-T', 'db', 'psql', '-c', 'SHOW server_version'], code, stderr);

  it('no engine, a stopped stack (v2 says so, v1 exits 1 silently), an unreachable server or a missing tool', () => {
    expect(cannotRunReason(exec('Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?'))).toBe(
      'the Docker engine is not running',
    );
    expect(cannotRunReason(exec('service "db" is not running'))).toBe('the stack is not running: no db container is up');
    expect(cannotRunReason(new CommandError('compose exec', [...V1, 'exec', '-T', 'db', 'psql'], 1, ''))).toBe(
      'the stack is not running: no db container is up',
    );
    const refused = new TaskError('cannot connect to PostgreSQL at 127.0.0.1:5432: connection refused', {
      exitCode: ExitCode.prerequisite,
    });
    expect(cannotRunReason(refused)).toBe('cannot connect to PostgreSQL at 127.0.0.1:5432: connection refused');
  });

  it('a command that ran and failed is not one: psql errors, a corrupt dump, a timeout', () => {
    expect(cannotRunReason(exec('psql: ERROR:  relation "x" does not exist'))).toBeUndefined();
    expect(cannotRunReason(exec('', 2))).toBeUndefined();
    expect(cannotRunReason(new CommandError('pg_restore', ['pg_restore', '--list', 'x.dump'], 1, ''))).toBeUndefined();
    expect(cannotRunReason(new TaskError('pg_dump did not finish within 30 s and was stopped'))).toBeUndefined();
  });
});

describe('parseContainerStates (docker inspect as JSON, no template logic an older engine evaluates differently)', () => {
  it('reads service, status and health; a container without a healthcheck (no Health key at all) is "none"', async () => {
    const { parseContainerStates } = await import('../../scripts/tools/compose.ts');
    const out =
      '"4de3b2c4761c886ffab23ca5"\t{"com.docker.compose.service":"odoo"}\t{"Running":true,"Status":"running"}\n' +
      '"aa11bb22cc33dd44ee55ff66"\t{"com.docker.compose.service":"db"}\t' +
      '{"Status":"running","Health":{"Status":"healthy","FailingStreak":0,"Log":[]}}\n' +
      '"0123456789abcdef01234567"\tnull\t{"Status":"exited"}\n';
    expect(parseContainerStates(out)).toEqual([
      { id: '4de3b2c4761c', service: 'odoo', status: 'running', health: 'none' },
      { id: 'aa11bb22cc33', service: 'db', status: 'running', health: 'healthy' },
      { id: '0123456789ab', service: '', status: 'exited', health: 'none' },
    ]);
  });
});
