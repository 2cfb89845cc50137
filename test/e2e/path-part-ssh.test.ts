// An end-to-end file (it needs the Docker engine and the throwaway PostgreSQL): runs in the e2e-v2 project.
// A path part (the addons folder) on a remote engine, for real: DOCKER_HOST=ssh://root@127.0.0.1:<port> through a real
// sshd and the real docker CLI and compose, to this machine's engine. To tell "read on the server" from "read here",
// the tasks run in their own mount namespace where the project folder is another copy (the local view, addons with
// other files); the engine keeps seeing the real folder (the server's view), as a VPS would.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabaseInfo } from '../harness/pg.ts';
import { exec, freePort, makeProject, type RunResult, type TestProject } from '../harness/project.ts';
import { errorLines } from '../harness/expect.ts';
import { describeE2E } from '../harness/e2e.ts';
import { listMembers } from '../../scripts/backup/archive.ts';

const docker = inject('docker');
const pg = inject('pg');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
/** What this suite needs beyond the engine target: each one named when it is missing. */
const missing = [
  !docker.odooImage && 'the stand-in odoo image',
  process.getuid?.() !== 0 && 'root (mount namespaces)',
  !fs.existsSync('/usr/sbin/sshd') && 'openssh-server',
  !has('ssh') && 'openssh-client',
  !has('unshare') && 'util-linux unshare',
];

let sshd: ChildProcess | undefined;
let sshDir = '';
let port = 0;
let p: TestProject;
let local = '';

function startSshd(): Promise<void> {
  sshDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-sshd-'));
  const f = (n: string) => path.join(sshDir, n);
  for (const k of ['host_key', 'client_key']) spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', f(k)]);
  fs.copyFileSync(f('client_key.pub'), f('authorized_keys'));
  fs.mkdirSync('/run/sshd', { recursive: true });
  fs.writeFileSync(
    f('sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${f('host_key')}`,
      `AuthorizedKeysFile ${f('authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      `PidFile ${f('sshd.pid')}`,
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    f('ssh_config'),
    `Host *\n  IdentityFile ${f('client_key')}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n`,
  );
  // The docker CLI (and compose) run `ssh` from PATH: this one reads our client config, then is the real ssh.
  fs.mkdirSync(f('bin'));
  fs.writeFileSync(f('bin/ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F ${f('ssh_config')} "$@"\n`, { mode: 0o755 });
  sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', f('sshd_config')], { stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  return new Promise((resolve, reject) => {
    const poll = () => {
      const r = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { env: remoteEnv(), encoding: 'utf8' });
      if (r.status === 0) return resolve();
      if (Date.now() > deadline) return reject(new Error(`sshd on ${port} does not answer: ${r.stderr}`));
      setTimeout(poll, 200);
    };
    poll();
  });
}

const remoteEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  // The engine target's own settings (DOCKER_CONFIG: where the docker CLI finds Compose v2).
  ...docker.env,
  PATH: `${path.join(sshDir, 'bin')}:${process.env.PATH}`,
  DOCKER_HOST: `ssh://root@127.0.0.1:${port}`,
});

/** The tasks in their own mount namespace, where the project folder is the local copy (the engine still sees the real one). */
function tasks(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"';
  return exec(['unshare', '-m', 'sh', '-c', script, 'sh', local, p.dir, process.execPath, path.join(p.dir, 'bin/tasks.mjs'), ...args], {
    cwd: p.dir,
    env: { ...remoteEnv(), ...env },
    timeoutMs: 180_000,
  });
}

const write = (file: string, text: string) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
};
const owners = (dir: string) =>
  spawnSync('find', [dir, '-printf', '%u:%g %P\n'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).sort();

describeE2E(
  'a path part on a remote engine (ssh://)',
  () => {
    beforeAll(async () => {
      port = await freePort();
      await startSshd();
      const db = await createTestDatabaseInfo(pg, 'rp');
      p = await makeProject({ docker, env: { DATABASE_URL: db.url, DOCKER_HOST: `ssh://root@127.0.0.1:${port}` } });
      // The server's folder: owned by 1234:1234 (not the user running the tasks), one module.
      fs.rmSync(path.join(p.dir, 'addons'), { recursive: true, force: true });
      write(path.join(p.dir, 'addons/mod_server/__manifest__.py'), "{'name': 'on the server'}\n");
      spawnSync('chown', ['-R', '1234:1234', path.join(p.dir, 'addons')]);
      // This machine's view of the same path: the project copy the tasks see, with other addons.
      local = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-localview-'));
      fs.cpSync(p.dir, local, { recursive: true, verbatimSymlinks: true });
      fs.rmSync(path.join(local, 'addons'), { recursive: true, force: true });
      write(path.join(local, 'addons/mod_local/__manifest__.py'), "{'name': 'on the laptop'}\n");
    });

    afterAll(async () => {
      if (sshd?.pid) process.kill(sshd.pid, 'SIGTERM');
      await p?.cleanup().catch(() => undefined);
      for (const d of [local, sshDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
    });

    let archive = '';

    it("backup reads the folder on the engine's host through a one-off container of the app image", async () => {
      const r = await tasks(['backup', '--only', 'addons']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`$ docker run --rm -i --pull never --user 0 --entrypoint sh --mount type=bind,source=${p.dir},`);
      const dir = path.join(local, 'backup');
      archive = path.join(dir, fs.readdirSync(dir).find((f) => f.endsWith('.tar.gz'))!);
      const inner = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-inner-'));
      try {
        expect(spawnSync('tar', ['-xzf', archive, '-C', inner, 'addons.tar']).status).toBe(0);
        const listed = spawnSync('tar', ['-tvf', path.join(inner, 'addons.tar'), '--numeric-owner'], { encoding: 'utf8' }).stdout;
        expect(listed).toContain('./mod_server/__manifest__.py');
        expect(listed).toMatch(/1234\/1234 .* \.\/mod_server\/__manifest__\.py/);
        expect(listed).not.toContain('mod_local');
      } finally {
        fs.rmSync(inner, { recursive: true, force: true });
      }
      expect((await listMembers(archive)).map((m) => m.name)).toContain('addons.tar');
    });

    it("restore puts the folder back on the engine's host, its owner kept, this machine's copy untouched", async () => {
      const server = path.join(p.dir, 'addons');
      fs.rmSync(path.join(server, 'mod_server'), { recursive: true });
      write(path.join(server, 'stray/file'), 'added after the backup\n');
      spawnSync('chown', ['-R', '1234:1234', server]);
      const r = await tasks(['restore', path.basename(archive, '.tar.gz'), '--only', 'addons', '--yes']);
      expect(r.code, r.stderr).toBe(0);
      expect(fs.readFileSync(path.join(server, 'mod_server/__manifest__.py'), 'utf8')).toBe("{'name': 'on the server'}\n");
      expect(fs.existsSync(path.join(server, 'stray'))).toBe(false);
      // Every entry, the folder itself included, has the folder's owner (1234:1234), as before the restore.
      expect(owners(server)).toEqual(['1234:1234 ', '1234:1234 mod_server', '1234:1234 mod_server/__manifest__.py']);
      expect(fs.readdirSync(path.join(local, 'addons'))).toEqual(['mod_local']);
      expect(fs.readdirSync(p.dir).filter((f) => f.includes('.restore-'))).toEqual([]);
    });

    it('an image the engine does not have is not pulled: the restore stops before touching the folder', async () => {
      const server = path.join(p.dir, 'addons');
      write(path.join(server, 'mod_server/extra.txt'), 'kept\n');
      const before = owners(server);
      const r = await tasks(['restore', path.basename(archive, '.tar.gz'), '--only', 'addons', '--yes'], {
        ODOO_IMAGE: 'local/not-on-the-engine:1',
      });
      expect(r.code, r.stderr).toBe(6);
      expect(errorLines(r.stderr).join('\n')).toContain('the image local/not-on-the-engine:1 is not on the remote engine');
      expect(r.stderr).not.toContain('the undo did not finish');
      expect(owners(server)).toEqual(before);
      // Nothing ran on the engine's host: the restore is undone, no journal is left to block the next change.
      expect(fs.existsSync(path.join(p.dir, 'backup', '.journal'))).toBe(false);
    });

    it("a folder missing on the engine's host fails the backup (exit 6) and is not created there", async () => {
      const server = path.join(p.dir, 'addons');
      const aside = `${server}.aside`;
      fs.renameSync(server, aside);
      try {
        const r = await tasks(['backup', '--only', 'addons']);
        expect(r.code, r.stderr).toBe(6);
        expect(errorLines(r.stderr)).toEqual([`error: backup part addons: ${server} does not exist on the remote engine's host`]);
        expect(fs.existsSync(server)).toBe(false);
      } finally {
        fs.renameSync(aside, server);
      }
    });
  },
  { docker, missing },
);
