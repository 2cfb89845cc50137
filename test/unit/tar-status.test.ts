// tar's own exit status told apart from compose's and docker's (the line the command in the container writes on stderr).
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { TAR_STATUS, TAR_STATUS_SCRIPT, judgeTarExit } from '../../scripts/backup/backup.ts';

const viaRun = { argv: [], via: 'run' as const };

describe('judgeTarExit', () => {
  it('compose exiting 1 without a status line (an image pull that failed) is a failure naming compose, not "files changed"', () => {
    const j = judgeTarExit(
      'filestore',
      viaRun,
      1,
      'Pulling odoo ...\nGet "https://registry.invalid/v2/": dial tcp: lookup registry.invalid\n',
    );
    expect(j.warning).toBeUndefined();
    expect(j.error?.message).toBe(
      'backup part filestore: compose run (a one-off container) exited with code 1 before tar reported its status ' +
        '(tar did not run or was cut off): Get "https://registry.invalid/v2/": dial tcp: lookup registry.invalid',
    );
  });
  it("tar's own 1 is a warning; its 2 is a failure; a status that differs from compose's exit code is a cut stream", () => {
    expect(judgeTarExit('fs', viaRun, 1, `tar: ./a: file changed as we read it\n${TAR_STATUS}1\n`).warning).toMatch(
      /tar exit 1, files changed while they were read \(kept as a warning\): tar: \.\/a: file changed as we read it$/,
    );
    expect(judgeTarExit('fs', viaRun, 2, `tar: ./a: Cannot open\n${TAR_STATUS}2\n`).error?.message).toMatch(
      /tar exited with code 2 in the container: tar: \.\/a: Cannot open/,
    );
    expect(judgeTarExit('fs', viaRun, 1, `${TAR_STATUS}0\nerror: connection reset\n`).error?.message).toMatch(
      /tar exited 0 but compose run .* exited with code 1: the stream from the container was cut/,
    );
    expect(judgeTarExit('fs', viaRun, 0, `${TAR_STATUS}0\n`)).toEqual({});
  });
  it('on the host, tar exit codes are tar’s own', () => {
    expect(judgeTarExit('addons', { argv: [] }, 1, 'tar: x: file changed as we read it\n').warning).toBeDefined();
    expect(judgeTarExit('addons', { argv: [] }, 0, '')).toEqual({});
  });
  it('the script reports tar’s status and exits with it, whatever the folder is called', () => {
    const r = spawnSync('sh', ['-c', TAR_STATUS_SCRIPT, 'sh', '-C', "/nonexistent dir; 'x'", '-cf', '-', '.'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n').slice(-1)[0]).toBe(`${TAR_STATUS}2`);
    const ok = execFileSync('sh', ['-c', `{ ${TAR_STATUS_SCRIPT}; } 2>&1 >/dev/null`, 'sh', '-C', '/etc', '-cf', '-', 'hostname'], {
      encoding: 'utf8',
    });
    expect(ok.trim()).toBe(`${TAR_STATUS}0`);
  });
});
