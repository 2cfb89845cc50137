// What `npm test` does about missing system prerequisites (test/harness/prereqs.ts), given a fake machine.
import { describe, expect, it } from 'vitest';
import { installCommand, missingPrerequisites, plan, PREREQUISITES, type Probe } from '../harness/prereqs.ts';

/** A machine that has everything except the commands, files and python modules named. */
function machine(lacks: { commands?: string[]; files?: string[]; modules?: string[] } = {}): Probe {
  return {
    command: (n) => !(lacks.commands ?? []).includes(n),
    file: (f) => !(lacks.files ?? []).includes(f),
    pythonModule: (m) => !(lacks.modules ?? []).includes(m),
  };
}

const root = { ci: false, canInstall: true };
const user = { ci: false, canInstall: false, cannotInstallBecause: 'not root' };
const ci = { ci: true, canInstall: false, cannotInstallBecause: 'not root' };

describe('prerequisites of npm test', () => {
  it('nothing missing: nothing to do', () => {
    expect(missingPrerequisites(machine())).toEqual([]);
    expect(plan(missingPrerequisites(machine()), user)).toEqual({ action: 'ok' });
  });

  it('maps each missing piece to its Debian package', () => {
    const pkgs = (lacks: Parameters<typeof machine>[0]) => missingPrerequisites(machine(lacks)).map((p) => p.pkg);
    expect(pkgs({ files: ['/usr/lib/postgresql/15/bin/initdb'] })).toEqual(['postgresql-15']);
    expect(pkgs({ files: ['/usr/lib/postgresql/15/bin/pgbench'] })).toEqual(['postgresql-15']);
    expect(pkgs({ files: ['/usr/lib/postgresql/15/bin/pg_restore'] })).toEqual(['postgresql-client-15']);
    expect(pkgs({ commands: ['aws'] })).toEqual(['awscli']);
    expect(pkgs({ commands: ['crontab'] })).toEqual(['cron']);
    expect(pkgs({ files: ['/etc/ssl/certs/ca-certificates.crt'] })).toEqual(['ca-certificates']);
    expect(pkgs({ commands: ['zsh', 'fish'] })).toEqual(['zsh', 'fish']);
    // A docker client alone is not an engine.
    expect(pkgs({ commands: ['dockerd'] })).toEqual(['docker.io']);
    expect(pkgs({ commands: ['docker-compose'] })).toEqual(['docker-compose']);
    expect(pkgs({ commands: ['debootstrap'] })).toEqual(['debootstrap']);
    expect(pkgs({ commands: ['busybox'], files: ['/bin/busybox'] })).toEqual(['busybox-static']);
    expect(pkgs({ commands: ['sshd', 'ssh', 'ip'] })).toEqual(['openssh-server', 'openssh-client', 'iproute2']);
    expect(pkgs({ commands: ['nsenter'] })).toEqual(['util-linux']);
    expect(pkgs({ modules: ['paramiko'] })).toEqual(['python3-paramiko']);
  });

  it('as root on Debian: one install of every missing package, one line each saying why', () => {
    const missing = missingPrerequisites(machine({ commands: ['dockerd', 'zsh', 'flock', 'unshare'] }));
    const p = plan(missing, root);
    expect(p).toEqual({
      action: 'install',
      packages: ['util-linux', 'zsh', 'docker.io'],
      lines: [
        'installing util-linux: the cron tests run backups under flock; ' +
          'the remote-engine end-to-end tests start the second engine and sshd in their own namespaces',
        'installing zsh: the completion tests run the generated zsh script in zsh',
        'installing docker.io: the end-to-end tests need a Docker engine',
      ],
    });
  });

  it('cannot install, only end-to-end pieces missing, outside CI: one warning line, and the tests go on', () => {
    const p = plan(missingPrerequisites(machine({ commands: ['docker', 'debootstrap'] })), user);
    expect(p.action).toBe('warn');
    const message = (p as { message: string }).message;
    expect(message.split('\n')).toHaveLength(1);
    expect(message).toContain('end-to-end tests will be skipped');
    expect(message).toContain('apt-get install -y --no-install-recommends docker.io debootstrap');
  });

  it('cannot install, a piece every run needs is missing: stops with one message naming each piece and the install command', () => {
    const p = plan(missingPrerequisites(machine({ commands: ['aws', 'fish', 'dockerd'] })), user);
    expect(p.action).toBe('fail');
    const message = (p as { message: string }).message;
    expect(message).toContain('cannot install here (not root)');
    expect(message).toMatch(/^ {2}- the aws CLI \(aws\): Debian\/Ubuntu package awscli/m);
    expect(message).toMatch(/^ {2}- fish: Debian\/Ubuntu package fish/m);
    expect(message).toMatch(/end-to-end only, optional.*docker\.io/);
    expect(message).toContain(`  ${installCommand(['awscli', 'fish'])}`);
  });

  it('in CI every piece is required: a missing end-to-end piece stops the run', () => {
    const p = plan(missingPrerequisites(machine({ modules: ['paramiko'] })), ci);
    expect(p.action).toBe('fail');
    expect((p as { message: string }).message).toContain(installCommand(['python3-paramiko']));
  });

  it('lists each package once in the install command', () => {
    expect(installCommand(['util-linux', 'zsh', 'util-linux'])).toBe(
      'sudo apt-get update && sudo apt-get install -y --no-install-recommends util-linux zsh',
    );
    expect(new Set(PREREQUISITES.map((p) => p.what)).size).toBe(PREREQUISITES.length);
  });
});
