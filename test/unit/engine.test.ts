// The engine the tasks talk to (local or remote, and from where), and what a remote one changes: URLs, binds, paramiko.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  PARAMIKO_REFUSAL,
  checkParamiko,
  describeEngine,
  engineKey,
  engineSelection,
  hostPathRun,
  pathPartService,
  serviceImage,
  parseEndpoint,
  prepareProject,
  projectBinds,
  remoteBindsWarning,
  shebangInterpreter,
  sshCommand,
  urlForEngine,
} from '../../scripts/tools/engine.ts';
import { composeBase, detectFlavor, discoveryKey, flavorKey, parseConfig, type ComposeProject } from '../../scripts/tools/compose.ts';
import { expandUrls } from '../../scripts/tasks/stack.ts';
import { createRunner, type Cmd, type Runner } from '../../scripts/core/runner.ts';
import { createLogger } from '../../scripts/core/log.ts';
import { CommandError, ExitCode, TaskError } from '../../scripts/core/errors.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'engine-unit-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const mk = (name: string) => fs.mkdtempSync(path.join(tmp, `${name}-`));

/** A probe answering `docker context inspect <name>` from a table, recording what it ran. */
function contextProbe(endpoints: Record<string, string>): Runner & { ran: string[] } {
  const ran: string[] = [];
  return {
    ran,
    dryRun: false,
    env: {},
    signal: undefined,
    log: undefined as unknown as Runner['log'],
    display: (c: Cmd) => c.argv.join(' '),
    async run(c: Cmd) {
      ran.push(c.argv.join(' '));
      expect(c.timeoutMs).toBeGreaterThan(0);
      const name = c.argv[3]!;
      if (!(name in endpoints)) throw new CommandError(c.argv.join(' '), c.argv, 1, `context "${name}" does not exist`);
      return { code: 0, stdout: `${endpoints[name]}\n`, stderr: '', dryRun: false };
    },
  };
}

const realProbe = () => createRunner({ log: createLogger({ sink: { write: () => true }, quiet: true }), env: process.env, cwd: tmp });

describe('endpoints', () => {
  it('ssh:// and tcp:// are remote with their host, user and port; unix:// and npipe:// are this machine', () => {
    expect(parseEndpoint('ssh://deploy@vps.example.com:2222')).toEqual({
      scheme: 'ssh',
      remote: true,
      host: 'vps.example.com',
      user: 'deploy',
      port: 2222,
    });
    expect(parseEndpoint('ssh://vps')).toEqual({ scheme: 'ssh', remote: true, host: 'vps' });
    expect(parseEndpoint('tcp://10.0.0.5:2376')).toEqual({ scheme: 'tcp', remote: true, host: '10.0.0.5', port: 2376 });
    expect(parseEndpoint('tcp://[fd00::1]:2375')).toEqual({ scheme: 'tcp', remote: true, host: 'fd00::1', port: 2375 });
    expect(parseEndpoint('engine.lan:2375')).toEqual({ scheme: 'tcp', remote: true, host: 'engine.lan', port: 2375 });
    expect(parseEndpoint('unix:///var/run/docker.sock')).toEqual({ scheme: 'unix', remote: false });
    expect(parseEndpoint('npipe:////./pipe/docker_engine')).toEqual({ scheme: 'npipe', remote: false });
    expect(sshCommand('ssh://deploy@vps:2222')).toBe('ssh -p 2222 deploy@vps');
  });

  it('the docker CLI order: DOCKER_HOST, then DOCKER_CONTEXT, then config.json currentContext, else the default socket', () => {
    const cfg = mk('cfg');
    fs.writeFileSync(path.join(cfg, 'config.json'), JSON.stringify({ currentContext: 'vps' }));
    expect(engineSelection({ DOCKER_HOST: 'ssh://a', DOCKER_CONTEXT: 'b', DOCKER_CONFIG: cfg })).toEqual({
      source: 'DOCKER_HOST',
      host: 'ssh://a',
    });
    expect(engineSelection({ DOCKER_CONTEXT: 'b', DOCKER_CONFIG: cfg })).toEqual({ source: 'DOCKER_CONTEXT', context: 'b' });
    expect(engineSelection({ DOCKER_CONFIG: cfg })).toEqual({ source: 'context', context: 'vps' });
    expect(engineSelection({ DOCKER_CONFIG: mk('empty') })).toEqual({ source: 'default' });
    // Without DOCKER_CONFIG: ~/.docker/config.json.
    const home = mk('home');
    fs.mkdirSync(path.join(home, '.docker'));
    fs.writeFileSync(path.join(home, '.docker', 'config.json'), JSON.stringify({ currentContext: 'staging' }));
    expect(engineSelection({ HOME: home })).toEqual({ source: 'context', context: 'staging' });
  });
});

describe('describeEngine', () => {
  it('DOCKER_HOST=ssh://… is remote, named by its host, without running anything', async () => {
    const probe = contextProbe({});
    expect(await describeEngine(probe, { DOCKER_HOST: 'ssh://deploy@vps.example.com' })).toEqual({
      remote: true,
      host: 'vps.example.com',
      endpoint: 'ssh://deploy@vps.example.com',
      source: 'DOCKER_HOST',
    });
    expect(await describeEngine(probe, { DOCKER_CONFIG: mk('none') })).toEqual({
      remote: false,
      endpoint: 'unix:///var/run/docker.sock',
      source: 'default',
    });
    expect(probe.ran).toEqual([]);
  });

  it("a context's endpoint comes from docker context inspect, cached until the selection or the config changes", async () => {
    const cfg = mk('cfg');
    const cache = mk('cache');
    const env = { DOCKER_CONTEXT: 'vps', DOCKER_CONFIG: cfg };
    const probe = contextProbe({ vps: 'ssh://deploy@vps:2222', other: 'tcp://other:2376' });
    expect(await describeEngine(probe, env, cache)).toEqual({
      remote: true,
      host: 'vps',
      endpoint: 'ssh://deploy@vps:2222',
      source: 'DOCKER_CONTEXT',
      context: 'vps',
    });
    expect(probe.ran).toEqual(['docker context inspect vps --format {{.Endpoints.docker.Host}}']);
    expect((await describeEngine(probe, env, cache)).host).toBe('vps');
    expect(probe.ran).toHaveLength(1);
    // `docker context use other` writes currentContext: without DOCKER_CONTEXT that is the answer, asked afresh.
    fs.writeFileSync(path.join(cfg, 'config.json'), JSON.stringify({ currentContext: 'other' }));
    expect(await describeEngine(probe, { DOCKER_CONFIG: cfg }, cache)).toMatchObject({
      host: 'other',
      source: 'context',
      context: 'other',
    });
    expect(probe.ran).toHaveLength(2);
  });

  it('a context that does not exist is a prerequisite error naming it and where it came from (exit 6)', async () => {
    const err = await describeEngine(contextProbe({}), { DOCKER_CONTEXT: 'gone', DOCKER_CONFIG: mk('cfg') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.prerequisite);
    expect((err as TaskError).message).toBe('docker context "gone" (DOCKER_CONTEXT) cannot be read: context "gone" does not exist');
  });
});

describe('cache keys follow the docker configuration and the engine selection', () => {
  const base = { PATH: '/usr/bin:/bin', HOME: '/nonexistent' };
  it('flavorKey and engineKey change with DOCKER_CONFIG, DOCKER_HOST and DOCKER_CONTEXT', () => {
    for (const key of [flavorKey, engineKey]) {
      const k = key(base);
      expect(key({ ...base })).toBe(k);
      expect(key({ ...base, DOCKER_CONFIG: '/tmp/v2-config' })).not.toBe(k);
      expect(key({ ...base, DOCKER_HOST: 'ssh://vps' })).not.toBe(k);
      expect(key({ ...base, DOCKER_CONTEXT: 'vps' })).not.toBe(k);
    }
  });

  it('engineKey changes with `docker context use` (config.json currentContext)', () => {
    const cfg = mk('cfg');
    const before = engineKey({ DOCKER_CONFIG: cfg });
    fs.writeFileSync(path.join(cfg, 'config.json'), JSON.stringify({ currentContext: 'vps' }));
    expect(engineKey({ DOCKER_CONFIG: cfg })).not.toBe(before);
  });

  it('a flavor cached for one DOCKER_CONFIG (v1 there) is not reused for another (the v2 plugin)', async () => {
    const bin = mk('bin');
    fs.writeFileSync(path.join(bin, 'docker'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const cache = mk('cache');
    const answers = (v2: boolean): Runner =>
      ({
        ...contextProbe({}),
        async run(c: Cmd) {
          if (c.argv[1] === 'compose' && !v2) throw new CommandError('x', c.argv, 1, "docker: 'compose' is not a docker command");
          return { code: 0, stdout: '2.26.1\n', stderr: '', dryRun: false };
        },
      }) as Runner;
    expect(await detectFlavor(answers(false), { PATH: bin, DOCKER_CONFIG: mk('v1cfg') }, cache)).toBe('v1');
    expect(await detectFlavor(answers(true), { PATH: bin, DOCKER_CONFIG: mk('v2cfg') }, cache)).toBe('v2');
  });
});

describe('Compose v1 over ssh:// needs paramiko', () => {
  /** A docker-compose script on PATH whose shebang names `interp` (a fixture that logs each run and exits `code`). */
  function v1With(code: number): { PATH: string; log: string } {
    const bin = mk('v1');
    const log = path.join(bin, 'ran.log');
    const interp = path.join(bin, 'python-fixture');
    fs.writeFileSync(interp, `#!/bin/sh\necho "$@" >> ${log}\nexit ${code}\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, 'docker-compose'), `#!${interp}\nimport sys\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(bin, 'docker'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    return { PATH: `${bin}:/usr/bin:/bin`, log };
  }
  const v1: ComposeProject = { flavor: 'v1', root: '/srv/app', files: [] };

  it('the interpreter comes from the shebang; a binary has none (the upstream build bundles paramiko)', () => {
    expect(shebangInterpreter('#!/usr/bin/python3\n# EASY-INSTALL')).toEqual(['/usr/bin/python3']);
    expect(shebangInterpreter('#!/usr/bin/env python3\n')).toEqual(['/usr/bin/env', 'python3']);
    expect(shebangInterpreter('\x7fELF\x02\x01')).toBeUndefined();
  });

  it('without paramiko every compose task is refused at once with one line (exit 6)', async () => {
    const { PATH, log } = v1With(1);
    const env = { PATH, DOCKER_HOST: 'ssh://deploy@vps' };
    const err = await prepareProject(realProbe(), env, v1, mk('cache')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).message).toBe(
      'Compose v1 needs python3-paramiko for ssh:// engines (apt-get install python3-paramiko), or install Compose v2',
    );
    expect((err as TaskError).message).toBe(PARAMIKO_REFUSAL);
    expect((err as TaskError).hint).toBeUndefined();
    expect((err as TaskError).exitCode).toBe(ExitCode.prerequisite);
    expect(fs.readFileSync(log, 'utf8')).toBe('-c import paramiko\n');
  });

  it('with paramiko it passes, and the yes is cached (the interpreter runs once)', async () => {
    const { PATH, log } = v1With(0);
    const cache = mk('cache');
    const env = { PATH, DOCKER_HOST: 'ssh://deploy@vps' };
    expect(await prepareProject(realProbe(), env, v1, cache)).toEqual(v1);
    expect(await prepareProject(realProbe(), env, v1, cache)).toEqual(v1);
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1);
    expect((await checkParamiko(realProbe(), env, cache)).detail).toMatch(/works \(cached\)$/);
  });

  it('the real docker-compose of this machine: its interpreter decides', async () => {
    const r = await checkParamiko(realProbe(), { PATH: process.env.PATH, DOCKER_HOST: 'ssh://vps' });
    const script = spawnSync('sh', ['-c', 'command -v docker-compose'], { encoding: 'utf8' }).stdout.trim();
    if (!script) return expect(r).toEqual({ ok: false, detail: 'docker-compose not found on PATH' });
    const interp = shebangInterpreter(fs.readFileSync(script, 'latin1').slice(0, 256));
    const imports = !interp || spawnSync(interp[0]!, [...interp.slice(1), '-c', 'import paramiko']).status === 0;
    expect(r.ok).toBe(imports);
  });

  it('not asked for Compose v2, a local engine or tcp://', async () => {
    const { PATH, log } = v1With(1);
    const v2: ComposeProject = { ...v1, flavor: 'v2' };
    expect(await prepareProject(realProbe(), { PATH, DOCKER_HOST: 'ssh://vps' }, v2)).toEqual(v2);
    expect(await prepareProject(realProbe(), { PATH, DOCKER_CONFIG: mk('cfg') }, v1)).toEqual(v1);
    expect(await prepareProject(realProbe(), { PATH, DOCKER_HOST: 'tcp://vps:2376' }, v1)).toEqual(v1);
    expect(fs.existsSync(log)).toBe(false);
  });

  it('v1 ignores DOCKER_CONTEXT by itself: it is passed as --context', async () => {
    const probe = contextProbe({ vps: 'tcp://vps:2376' });
    const p = await prepareProject(probe, { DOCKER_CONTEXT: 'vps', DOCKER_CONFIG: mk('cfg') }, v1);
    expect(composeBase(p)).toEqual(['docker-compose', '--context', 'vps', '--project-directory', '/srv/app']);
    expect(composeBase({ ...p, flavor: 'v2' })).toEqual(['docker', 'compose', '--project-directory', '/srv/app']);
  });
});

describe('bind mounts a remote engine resolves on its own disk', () => {
  const root = '/srv/app';
  const v1Yaml = `services:
  odoo:
    image: odoo:17
    volumes:
    - odoo-data:/var/lib/odoo:rw
    - /srv/app/addons:/mnt/extra-addons:ro
    - /srv/app/compose/odoo.conf:/etc/odoo/odoo.conf:ro
    - /etc/localtime:/etc/localtime:ro
  db:
    image: postgres:15
    volumes:
    - db-data:/var/lib/postgresql/data:rw
`;
  const v2Json = JSON.stringify({
    services: {
      odoo: {
        image: 'odoo:17',
        volumes: [
          { type: 'volume', source: 'odoo-data', target: '/var/lib/odoo' },
          { type: 'bind', source: '/srv/app/addons', target: '/mnt/extra-addons', read_only: true },
          { type: 'bind', source: '/srv/app/compose/odoo.conf', target: '/etc/odoo/odoo.conf' },
        ],
      },
      tools: { image: 'x', volumes: [{ type: 'bind', source: '/srv/app/addons', target: '/a' }] },
    },
  });

  it('lists the project-folder sources once each, from v1 YAML and v2 JSON, not volumes or outside paths', async () => {
    for (const [text, flavor] of [
      [v1Yaml, 'v1'],
      [v2Json, 'v2'],
    ] as const) {
      expect(projectBinds(await parseConfig(text, flavor), root)).toEqual(['./addons', './compose/odoo.conf']);
    }
  });

  it('warns only on a remote engine, naming its host and every path', async () => {
    const binds = projectBinds(await parseConfig(v2Json, 'v2'), root);
    const remote = { remote: true, host: 'vps', endpoint: 'ssh://vps', source: 'DOCKER_HOST' as const };
    expect(remoteBindsWarning(remote, binds, root)).toBe(
      'the engine is remote (vps): these bind mounts are read on vps, not here, at /srv/app/…: ./addons, ./compose/odoo.conf ' +
        '(they must exist there; docker/compose#8484)',
    );
    expect(remoteBindsWarning({ remote: false, endpoint: 'unix:///var/run/docker.sock', source: 'default' }, binds, root)).toBeUndefined();
    expect(remoteBindsWarning(remote, [], root)).toBeUndefined();
  });
});

describe('URLs after dev', () => {
  const remote = { remote: true, host: 'vps.example.com' };
  it('name the engine host instead of this machine when it is remote', () => {
    expect(urlForEngine('http://localhost:8069', remote)).toBe('http://vps.example.com:8069');
    expect(urlForEngine('http://127.0.0.1:8080/web', remote)).toBe('http://vps.example.com:8080/web');
    expect(urlForEngine('http://0.0.0.0', remote)).toBe('http://vps.example.com');
    expect(urlForEngine('http://localhost:8069', { remote: true, host: 'fd00::1' })).toBe('http://[fd00::1]:8069');
    expect(urlForEngine('https://shop.example.com', remote)).toBe('https://shop.example.com');
    expect(urlForEngine('http://localhost:8069', { remote: false })).toBe('http://localhost:8069');
  });

  it('expandUrls fills ${VAR:-default} and then names the host', () => {
    const urls = { Odoo: 'http://localhost:${ODOO_PORT:-8069}' };
    expect(expandUrls(urls, (k) => (k === 'ODOO_PORT' ? '18069' : undefined), remote)).toEqual(['Odoo: http://vps.example.com:18069']);
    expect(expandUrls(urls, () => undefined)).toEqual(['Odoo: http://localhost:8069']);
  });
});

describe('a host path on a remote engine: the one-off container', () => {
  it('docker run of the image, offline (--pull never), as root, the parent folder mounted (read-only to read), nothing created', () => {
    expect(
      hostPathRun('odoo:17', '/srv/app/addons', 'sh', ['-c', 'tar …', 'sh', '/mnt/compose-tasks-part/addons'], { readOnly: true }),
    ).toEqual([
      'docker',
      'run',
      '--rm',
      '-i',
      '--pull',
      'never',
      '--user',
      '0',
      '--entrypoint',
      'sh',
      '--mount',
      'type=bind,source=/srv/app,target=/mnt/compose-tasks-part,readonly',
      'odoo:17',
      '-c',
      'tar …',
      'sh',
      '/mnt/compose-tasks-part/addons',
    ]);
    // A comma in the path is quoted for --mount's CSV; restoring mounts read-write.
    expect(hostPathRun('odoo:17', '/srv/a,b/addons', 'bash', ['-c', 's'])).toContain(
      'type=bind,"source=/srv/a,b",target=/mnt/compose-tasks-part',
    );
  });

  it("the service's image: its own, else the name compose gives a built one (v2 and v1 differ)", async () => {
    const services = await parseConfig(
      JSON.stringify({ services: { odoo: { image: 'odoo:17' }, app: { build: { context: '.' } }, x: {} } }),
      'v2',
    );
    expect(serviceImage(services, 'odoo', 'Shop', 'v2')).toBe('odoo:17');
    expect(serviceImage(services, 'app', 'Shop', 'v2')).toBe('shop-app');
    expect(serviceImage(services, 'app', 'Shop', 'v1')).toBe('shop_app');
    expect(serviceImage(services, 'x', 'Shop', 'v2')).toBeUndefined();
    expect(serviceImage(services, 'nope', 'Shop', 'v2')).toBeUndefined();
    expect(pathPartService({}, ['odoo'])).toBe('odoo');
    expect(pathPartService({ service: 'web' }, ['odoo'])).toBe('web');
  });
});

describe('the services cache follows the variables the compose files use', () => {
  it('a different ODOO_IMAGE in the environment is a different answer (the image a remote path part runs)', () => {
    const root = mk('proj');
    fs.writeFileSync(path.join(root, 'compose.yaml'), 'services:\n  odoo:\n    image: ${ODOO_IMAGE:-odoo:17}\n');
    const where = { root, files: ['compose.yaml'] };
    const k = discoveryKey(where, { ODOO_IMAGE: 'odoo:17' }, []);
    expect(discoveryKey(where, { ODOO_IMAGE: 'odoo:17' }, [])).toBe(k);
    expect(discoveryKey(where, { ODOO_IMAGE: 'registry.example/odoo:17.0-7' }, [])).not.toBe(k);
    expect(discoveryKey(where, { ODOO_IMAGE: 'odoo:17', UNRELATED: 'x' }, [])).toBe(k);
  });
});

describe('probes that may hang over ssh', () => {
  it('a probe past its time bound is stopped and reported as such (exit 1), not as exit 143', async () => {
    const started = Date.now();
    const err = await realProbe()
      .run({ argv: ['sleep', '5'], stdout: 'capture', stderr: 'capture', timeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).message).toBe('sleep did not finish within 0.3 s and was stopped');
    expect((err as TaskError).exitCode).toBe(ExitCode.failure);
  });
});
