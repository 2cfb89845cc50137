// Benchmark: node's peak RSS (VmHWM of the tasks process, sampled every 25 ms) while `tasks backup` and `tasks restore --yes`
// run on a big database: pgbench -s 200 (~3 GB) plus a filestore, URL mode against a throwaway PostgreSQL 15.
//   npx tsx bench/memory.ts [scale=200] [filestoreMb=200]     (rewrites the <!-- bench:memory --> section of docs/benchmarks.md)
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machine, measure, writeSection } from './report.ts';
import { adminQuery, createTestDatabaseInfo, pgbenchInit, startPostgres } from '../test/harness/pg.ts';
import { makeProject } from '../test/harness/project.ts';
import { filestoreAsFolder, overrideConfig } from './project.ts';

const scale = Number(process.argv[2] ?? 200);
const filestoreMb = Number(process.argv[3] ?? 200);
const LIMIT_MB = 150;

const { info, stop } = await startPostgres();
try {
  const t0 = Date.now();
  process.stderr.write(`pgbench -i -s ${scale} ...\n`);
  const db = await createTestDatabaseInfo(info, 'benchmem');
  await pgbenchInit(info, db.name, scale);
  const dbSize = await adminQuery(info, 'postgres', `SELECT pg_size_pretty(pg_database_size('${db.name}'))`);
  process.stderr.write(`database ${dbSize} in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);

  const project = await makeProject({
    env: { DATABASE_URL: db.url, POSTGRES_DB: db.name, POSTGRES_USER: db.user, POSTGRES_PASSWORD: db.password },
  });
  // URL mode with the filestore as a host folder and no app service to stop or health-check: no Docker needed.
  overrideConfig(project.dir, { backupParts: filestoreAsFolder('filestore'), appServices: [], healthCheck: undefined });
  const fsDir = path.join(project.dir, 'filestore', db.name);
  for (let i = 0; i < filestoreMb; i++) {
    const sub = path.join(fsDir, (i % 256).toString(16).padStart(2, '0'));
    fs.mkdirSync(sub, { recursive: true });
    fs.writeFileSync(path.join(sub, crypto.randomBytes(20).toString('hex')), crypto.randomBytes(1 << 20));
  }

  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${info.binDir}:${process.env.PATH}` };
  for (const k of Object.keys(env))
    if (/^(COMPOSE_|APP_ENV$|POSTGRES_|ODOO_|DB_|DATABASE_URL$|S3_|AWS_|BACKUP_|VITEST)/.test(k)) delete env[k];
  const bin = path.join(project.dir, 'bin', 'tasks.mjs');
  const run = (args: string[]) => measure([process.execPath, bin, ...args], { env, cwd: project.dir, watchNode: true });
  await run(['--list']); // the bundle cache, built once, not part of either step

  const load0 = os.loadavg()[0]!;
  process.stderr.write('tasks backup ...\n');
  const backup = await run(['backup']);
  const backupDir = path.join(project.dir, 'backup');
  const archive = fs
    .readdirSync(backupDir)
    .filter((f) => f.endsWith('.tar.gz'))
    .sort()
    .at(-1)!;
  const archiveSize = fs.statSync(path.join(backupDir, archive)).size;
  const name = archive.replace(/\.tar\.gz$/, '');
  process.stderr.write(`backup: ${backup.seconds.toFixed(0)} s, peak ${backup.nodePeakMb!.toFixed(0)} MB\n`);
  await new Promise((r) => setTimeout(r, 1100)); // the safety backup gets a name of its own
  process.stderr.write('tasks restore --yes ...\n');
  const restore = await run(['restore', name, '--yes']);
  process.stderr.write(`restore: ${restore.seconds.toFixed(0)} s, peak ${restore.nodePeakMb!.toFixed(0)} MB\n`);
  const rows = await adminQuery(info, db.name, 'SELECT count(*) FROM pgbench_accounts');
  const load1 = os.loadavg()[0]!;

  const mb = (n: number) => `${(n / 1048576).toFixed(0)} MB`;
  const verdict = (p: number) => (p < LIMIT_MB ? 'met' : '**NOT met**');
  const md = `
### Memory at scale: \`tasks backup\` and \`tasks restore --yes\` on pgbench -s ${scale}

${machine()}. Dataset: \`pgbench -i -s ${scale}\` (database ${dbSize}, ${Number(rows).toLocaleString('en')} accounts after the restore) \
+ ${filestoreMb} MB incompressible filestore (host-path part) + addons; URL mode against a local PostgreSQL 15 (fsync off).
One run of each. Peak RSS is VmHWM of the node process alone (its worker threads included, pg_dump / pg_restore / tar not),
sampled every 25 ms from /proc.

| step | node peak RSS | wall time | archive |
|---|---|---|---|
| \`tasks backup\` | ${backup.nodePeakMb!.toFixed(0)} MB | ${backup.seconds.toFixed(0)} s | ${mb(archiveSize)} |
| \`tasks restore <name> --yes\` (verify, safety backup of the live database, load, swap) \
| ${restore.nodePeakMb!.toFixed(0)} MB | ${restore.seconds.toFixed(0)} s | |

Target: node peak RSS under ${LIMIT_MB} MB: backup ${verdict(backup.nodePeakMb!)}, restore ${verdict(restore.nodePeakMb!)}.
Node streams every part in fixed-size chunks, so its memory does not grow with the database; the data itself passes through
pg_dump, pg_restore and the kernel's page cache.
The wall times are for information only: this machine was shared with other jobs while it ran (load average, 1 min,
${load0.toFixed(1)} before the backup and ${load1.toFixed(1)} after the restore, on ${os.cpus().length} cores).
Run: \`npx tsx bench/memory.ts [scale] [filestoreMb]\`.
`;
  writeSection('memory', md);
  process.stdout.write(md);
  await project.cleanup();
} finally {
  await stop();
}
