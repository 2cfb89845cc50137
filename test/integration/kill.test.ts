// kill -9 of the tasks process in the middle of a restore, a backup and a db-import (URL mode, a real PostgreSQL 15):
// the next command that takes the change lock finds what the dead run left (side databases, staging folders, partial
// files) and removes it; the live database is exactly as it was and the lock is free.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { main } from '../../scripts/core/cli.ts';
import { config, tasks } from '../../tasks.ts';
import { serviceTasks } from '../../scripts/tasks/stack.ts';
import { adminQuery, repoRoot, tableFingerprint, type TestDatabase } from '../harness/pg.ts';
import { sink } from '../harness/sink.ts';
import { smallLiveDatabase, urlModeRoot } from '../harness/url-project.ts';

const pg = inject('pg');
const PROJECT = 'kill';
const cleanup: string[] = [];
const tmp = (prefix: string) => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanup.push(d);
  return d;
};

// The child runs the same registry with this config: a database and a host folder, no containers.
const CONFIG = `{ ...config, migrate: undefined, seedCommand: undefined, appServices: [], healthCheck: undefined,
  backupParts: [{ name: 'database', kind: 'database' }, { name: 'addons', kind: 'path', path: 'addons' }] }`;
let childScript = '';

const makeRoot = () => urlModeRoot(tmp('ct-kill-'));

const baseEnv = (db: TestDatabase, extra: Record<string, string> = {}): Record<string, string> => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin',
  HOME: process.env.HOME ?? '/root',
  APP_ENV: 'development',
  COMPOSE_PROJECT_NAME: PROJECT,
  DATABASE_URL: db.url,
  POSTGRES_DB: db.name,
  ...extra,
});

/** The next command, in this process. */
async function run(root: string, db: TestDatabase, argv: string[]): Promise<{ code: number; stderr: string }> {
  const stderr = sink();
  const code = await main({
    argv,
    env: baseEnv(db),
    root,
    tasks,
    serviceTasks,
    config: {
      ...config,
      migrate: undefined,
      appServices: [],
      healthCheck: undefined,
      backupParts: [
        { name: 'database', kind: 'database' as const },
        { name: 'addons', kind: 'path' as const, path: 'addons' },
      ],
    },
    stdout: sink(),
    stderr,
    stdinIsTTY: false,
  });
  return { code, stderr: stderr.text };
}

/**
 * Starts `tasks <argv>` as its own process with a client tool (pg_restore or pg_dump) that does part of its work,
 * touches $MARK and hangs; once the mark is there, kills the tasks process with SIGKILL (and the hung tool).
 */
async function killMidway(root: string, db: TestDatabase, argv: string[], tool: 'pg_restore' | 'pg_dump'): Promise<string> {
  const bin = tmp('ct-killbin-');
  const mark = path.join(bin, 'started');
  const real = path.join(pg.binDir, tool);
  const body =
    tool === 'pg_restore'
      ? `case " $* " in *" --dbname "*) "${real}" --section=pre-data "$@"; echo $$ > "$MARK"; exec sleep 120 ;; esac\nexec "${real}" "$@"`
      : `case " $* " in *" --version "*) exec "${real}" "$@" ;; esac\nhead -c 100000 /dev/urandom; echo $$ > "$MARK"; exec sleep 120`;
  fs.writeFileSync(path.join(bin, tool), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  const child = spawn(
    process.execPath,
    ['--import', pathToFileURL(path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href, childScript, ...argv],
    {
      cwd: root,
      env: { ...baseEnv(db, { PATH: `${bin}:${process.env.PATH}`, MARK: mark, CT_ROOT: root }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdout.resume();
  // 'exit', not 'close': the hung tool, an orphan once its parent is killed, still holds the pipes.
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  for (let i = 0; i < 1200 && !fs.existsSync(mark) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  expect(fs.existsSync(mark), stderr).toBe(true);
  child.kill('SIGKILL');
  await exited;
  spawnSync('kill', ['-9', fs.readFileSync(mark, 'utf8').trim()]);
  child.stderr.destroy();
  return stderr;
}

const sideDatabases = async (db: string) =>
  (await adminQuery(pg, 'postgres', `SELECT datname FROM pg_database WHERE datname LIKE '${db}\\_%' ORDER BY 1`))
    .split('\n')
    .filter(Boolean);

const victim = () => smallLiveDatabase(pg, 'kvictim');

beforeAll(() => {
  const dir = tmp('ct-killchild-');
  childScript = path.join(dir, 'tasks-child.mts');
  const imp = (f: string) => JSON.stringify(path.join(repoRoot, f));
  fs.writeFileSync(
    childScript,
    [
      `import { main } from ${imp('scripts/core/cli.ts')};`,
      `import { config, tasks } from ${imp('tasks.ts')};`,
      `import { serviceTasks } from ${imp('scripts/tasks/stack.ts')};`,
      `process.exitCode = await main({ argv: process.argv.slice(2), env: process.env, root: process.env.CT_ROOT!, tasks, serviceTasks,`,
      `  config: ${CONFIG} as typeof config, stdout: process.stdout, stderr: process.stderr, stdinIsTTY: false });`,
    ].join('\n'),
  );
});
afterAll(() => {
  for (const d of cleanup) fs.rmSync(d, { recursive: true, force: true });
});

describe('kill -9 midway, then the next command (real PostgreSQL, real processes)', () => {
  it('restore killed during pg_restore: the next backup refuses naming it; tasks recover undoes it; then backups go on', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const made = await run(root, db, ['backup']);
    expect(made.code, made.stderr).toBe(0);
    const [archive] = fs.readdirSync(path.join(root, 'backup')).filter((f) => f.endsWith('.tar.gz'));
    await new Promise((r) => setTimeout(r, 1100)); // the next backup gets a new name
    const out = await killMidway(root, db, ['restore', archive!, '--yes', '--no-safety-backup'], 'pg_restore');
    // What the dead run left: a half-restored side database and the unpacked archive.
    const left = await sideDatabases(db.name);
    expect(left, out).toEqual([expect.stringMatching(new RegExp(`^${db.name}_restore_\\d{14}$`))]);
    expect(fs.readdirSync(path.join(root, 'backup')).filter((f) => f.startsWith('.restore-'))).toHaveLength(1);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);

    const refused = await run(root, db, ['backup']);
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(
      new RegExp(
        `restore of ${archive!.replace('.tar.gz', '')} into ${db.name} was interrupted at 'restore the database and unpack the folders'`,
      ),
    );
    expect(refused.stderr).toContain('run tasks recover');
    const rec = await run(root, db, ['recover']);
    expect(rec.code, rec.stderr).toBe(0);
    expect(rec.stderr).toContain('restore undone: the previous state is back');
    expect(await sideDatabases(db.name)).toEqual([]);
    const next = await run(root, db, ['backup']);
    expect(next.code, next.stderr).toBe(0); // the lock is free
    expect(fs.readdirSync(path.join(root, 'backup')).filter((f) => f.startsWith('.'))).toEqual(['.lock', '.verified.json']);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it('backup killed during pg_dump: the next backup removes the partial staging folder; no archive from the dead run', async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const out = await killMidway(root, db, ['backup'], 'pg_dump');
    const dir = path.join(root, 'backup');
    expect(
      fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-')),
      out,
    ).toHaveLength(1);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tar.gz'))).toEqual([]);
    await new Promise((r) => setTimeout(r, 1100));
    const next = await run(root, db, ['backup']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/removed \.tmp-kill_backup_.*, left by an interrupted run \(a backup being written\)/);
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.tmp-') || f.endsWith('.tmp'))).toEqual([]);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tar.gz'))).toHaveLength(1);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });

  it("db-import killed while loading: the next db-import drops the dead run's side database and goes through", async () => {
    const { db, print } = await victim();
    const root = makeRoot();
    const file = path.join(tmp('ct-killdump-'), 'x.dump');
    spawnSync(path.join(pg.binDir, 'pg_dump'), ['--format=custom', '--dbname', db.url, '--file', file]);
    const out = await killMidway(root, db, ['db-import', file, '--yes'], 'pg_restore');
    const left = await sideDatabases(db.name);
    expect(left, out).toEqual([expect.stringMatching(new RegExp(`^${db.name}_import_\\d+$`))]);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
    const next = await run(root, db, ['db-import', file, '--yes']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain(`dropped database ${left[0]}, left by an interrupted restore or import`);
    expect(await sideDatabases(db.name)).toEqual([]);
    expect(await tableFingerprint(pg, db.name)).toEqual(print);
  });
});
