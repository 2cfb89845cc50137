// Torn folder streams on a real Docker engine: a container killed while tar runs, a link that cuts the stream and
// exits 1 (what a remote engine over SSH does), and a one-off container whose image cannot be pulled. Each fails
// the backup with a line naming compose/docker; earlier backups, the S3 prefix and retention are untouched.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeProject, type RunResult, type TestProject } from '../harness/project.ts';
import { describeE2E } from '../harness/e2e.ts';
import { clearPrefix, listKeys } from '../harness/s3.ts';

const docker = inject('docker');
const s3 = inject('s3');
const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
const realBin = (tool: string) => {
  try {
    return execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};

describeE2E('torn folder streams on a real Docker engine', () => {
  let p: TestProject;
  const prefix = `e2e${crypto.randomBytes(4).toString('hex')}/`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-e2e-torn-'));
  let dir: string;
  let before: string[] = [];
  let keysBefore: string[] = [];
  const archives = () =>
    fs.existsSync(dir)
      ? fs
          .readdirSync(dir)
          .filter((f) => f.endsWith('.tar.gz'))
          .sort()
      : [];
  const leftovers = () => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-') || f.endsWith('.tmp')) : []);

  beforeAll(async () => {
    p = await makeProject({
      docker,
      env: {
        BACKUP_KEEP_MIN: '1',
        S3_BUCKET: s3.bucket,
        S3_ENDPOINT: s3.endpoint,
        S3_REGION: s3.region,
        S3_PREFIX: prefix,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      },
    });
    dir = path.join(p.dir, 'backup');
    const up = await p.run(['dev']);
    expect(up.code, show(up)).toBe(0);
    // 200 MB the stream takes a few seconds to carry (random: stored, not deflated).
    const mk = await p.compose([
      'exec',
      '-T',
      'odoo',
      'sh',
      '-c',
      'mkdir -p /var/lib/odoo/filestore/odoo/ab && head -c 200000000 /dev/urandom > /var/lib/odoo/filestore/odoo/ab/big' +
        ' && echo small > /var/lib/odoo/filestore/odoo/ab/z',
    ]);
    expect(mk.code, show(mk)).toBe(0);
    const good = await p.run(['backup', '--only', 'filestore']);
    expect(good.code, show(good)).toBe(0);
    // An old copy a good run would prune (keep min 1): it must survive every failed run.
    const [first] = archives();
    fs.copyFileSync(path.join(dir, first!), path.join(dir, `${p.name}_backup_2020-01-01_00-00-00.tar.gz`));
    before = archives();
    keysBefore = (await listKeys(s3, prefix)).map((k) => k.key);
  }, 600_000);
  afterAll(async () => {
    await p?.cleanup();
    await clearPrefix(s3, prefix).catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function expectNothingLost(r: RunResult): Promise<void> {
    expect(r.stderr).not.toMatch(/uploading to|deleted (local|remote)/);
    expect(archives()).toEqual(before);
    expect(leftovers()).toEqual([]);
    expect((await listKeys(s3, prefix)).map((k) => k.key)).toEqual(keysBefore);
  }

  /** `tasks backup --only filestore` as a child, returned once its stream is under way (a few MB of 200 written). */
  async function backupUnderWay(env: Record<string, string> = {}) {
    const child = spawn(process.execPath, [path.join(p.dir, 'bin/tasks.mjs'), 'backup', '--only', 'filestore'], {
      cwd: p.dir,
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(COMPOSE_|S3_|AWS_|BACKUP_|VITEST)/.test(k))),
        // The engine target's settings (DOCKER_CONFIG: where the docker CLI finds Compose v2), as makeProject's runs get.
        ...docker.env,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.stdout.resume();
    const done = new Promise<number>((res) => child.on('close', (code) => res(code ?? 128)));
    const streaming = () =>
      fs.existsSync(dir) &&
      fs
        .readdirSync(dir)
        .filter((f) => f.startsWith('.tmp-'))
        .some((f) => (fs.statSync(path.join(dir, f, 'filestore.tar'), { throwIfNoEntry: false })?.size ?? 0) > 4_000_000);
    const end = Date.now() + 60_000;
    while (!streaming() && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
    expect(streaming(), stderr).toBe(true);
    return { done, stderr: () => stderr };
  }

  it('the service container frozen mid-stream (docker pause: a stalled engine or SSH link): stopped by the stall bound', async () => {
    await new Promise((res) => setTimeout(res, 1100)); // a new backup name
    const id = (await p.compose(['ps', '-q', 'odoo'])).stdout.trim();
    expect(id).not.toBe('');
    // Only the bound is short here; the default (600 s) lets a slow but steady stream run for hours.
    const b = await backupUnderWay({ BACKUP_STALL_TIMEOUT: '3' });
    const paused = await p.docker(['pause', id]);
    expect(paused.code, show(paused)).toBe(0);
    const t0 = Date.now();
    try {
      const code = await Promise.race([b.done, new Promise<number>((res) => setTimeout(() => res(-1), 60_000))]);
      const stderr = b.stderr();
      expect(code, stderr).toBe(1);
      expect(Date.now() - t0, stderr).toBeLessThan(45_000);
      expect(stderr).toMatch(/error: backup part filestore: .* produced no output for 3 s and was stopped/);
      await expectNothingLost({ code, stdout: '', stderr });
    } finally {
      await p.docker(['unpause', id]);
    }
  });

  it('the service container killed while tar streams the filestore: the backup fails naming compose, nothing published', async () => {
    await new Promise((res) => setTimeout(res, 1100)); // a new backup name
    // The container id is read first: the kill must land while the stream runs (a few seconds).
    const id = (await p.compose(['ps', '-q', 'odoo'])).stdout.trim();
    expect(id).not.toBe('');
    const b = await backupUnderWay();
    const kill = await p.docker(['kill', id]);
    expect(kill.code, show(kill)).toBe(0);
    const code = await b.done;
    const stderr = b.stderr();
    expect(code, stderr).toBe(1);
    expect(stderr).toMatch(
      /error: backup part filestore: (compose exec exited with code \d+ before tar reported its status|its tar stream is incomplete)/,
    );
    expect(stderr).not.toMatch(/files changed while they were read/);
    await expectNothingLost({ code, stdout: '', stderr });
    const up = await p.compose(['up', '-d', 'odoo']);
    expect(up.code, show(up)).toBe(0);
  });

  it('a link that cuts the stream after 200 KB and exits 1 (a remote engine over SSH): tar said 0, the backup still fails', async () => {
    await new Promise((res) => setTimeout(res, 1100));
    // Reads everything (tar ends and reports 0) but passes on only 200 KB, then exits 1, as a dropped SSH channel does.
    const cut = (real: string) =>
      `#!/bin/bash\ncase "$*" in *"-cf - ."*) "${real}" "$@" | { head -c 204800; cat > /dev/null; }; exit 1;; esac\nexec "${real}" "$@"\n`;
    const w = fs.mkdtempSync(path.join(tmp, 'wrap-'));
    if (realBin('docker-compose')) fs.writeFileSync(path.join(w, 'docker-compose'), cut(realBin('docker-compose')), { mode: 0o755 });
    fs.writeFileSync(path.join(w, 'docker'), cut(realBin('docker')), { mode: 0o755 });
    const r = await p.run(['backup', '--only', 'filestore'], { env: { PATH: `${w}:${process.env.PATH}` } });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(
      /error: backup part filestore: tar exited 0 but compose exec exited with code 1: the stream from the container was cut/,
    );
    await expectNothingLost(r);
  });

  it('the stack down, the image not pullable: compose run failing is reported as compose, not as "tar exit 1, files changed"', async () => {
    const down = await p.compose(['stop', 'odoo']);
    expect(down.code, show(down)).toBe(0);
    await new Promise((res) => setTimeout(res, 1100));
    // No registry answers here: the one-off container's image pull fails, as it did on a machine without the image.
    const r = await p.run(['backup', '--only', 'filestore'], { env: { ODOO_IMAGE: 'registry.invalid/compose-tasks/odoo:17' } });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(/one-off odoo container/);
    expect(r.stderr).toMatch(
      new RegExp(
        'error: backup part filestore: compose run \\(a one-off container\\) exited with code \\d+ ' +
          'before tar reported its status .*: .*registry\\.invalid',
      ),
    );
    expect(r.stderr).not.toMatch(/files changed while they were read/);
    await expectNothingLost(r);
  });
});
