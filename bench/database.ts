// Benchmark: `tasks db-export` / `tasks db-import` of a pgbench -i -s 50 database vs pg_dump / pg_restore by hand; node peak memory.
//   npx tsx bench/database.ts [scale=50] [runs=7]     (rewrites the <!-- bench:database --> section of docs/benchmarks.md)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machine, measure, median, root, writeSection } from './report.ts';
import { adminQuery, createTestDatabaseInfo, pgbenchInit, quoteIdent, startPostgres, tableFingerprint } from '../test/harness/pg.ts';

const scale = Number(process.argv[2] ?? 50);
const RUNS = Number(process.argv[3] ?? 7);

const { info, stop } = await startPostgres();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-db-'));
try {
  process.stderr.write(`pgbench -i -s ${scale} ...\n`);
  const src = await createTestDatabaseInfo(info, 'bench_src');
  await pgbenchInit(info, src.name, scale);
  const sizeMb = Number(await adminQuery(info, 'postgres', `SELECT pg_database_size('${src.name}') / 1048576`));
  const srcPrint = await tableFingerprint(info, src.name);

  const pgEnv = { ...process.env, PGPASSWORD: src.password };
  const connAs = (user: string) => ['--host', info.host, '--port', String(info.port), '--username', user, '--no-password'];
  const conn = connAs(src.user);
  const node = process.execPath;
  const bin = path.join(root, 'bin', 'tasks.mjs');
  const tasksEnv = (url: string) => ({
    ...process.env,
    DATABASE_URL: url,
    POSTGRES_PASSWORD: 'unused-in-url-mode',
    APP_ENV: 'development',
  });

  const exp = { tasks: [] as number[], hand: [] as number[], peak: [] as number[] };
  const full = { tasks: [] as number[], hand: [] as number[], peak: [] as number[] };
  const imp = { tasks: [] as number[], hand: [] as number[], peak: [] as number[] };
  let dumpBytes = 0;

  // Warm the bin's bundle cache once so no run pays for it.
  await measure([node, bin, '--list'], { env: tasksEnv(src.url) }).catch(() => undefined);

  for (let i = 0; i < RUNS; i++) {
    const a = path.join(work, `tasks-${i}.dump`);
    const b = path.join(work, `hand-${i}.dump`);
    // Alternate the order so neither side always runs on a warmer cache.
    const runTasks = async () => {
      const m = await measure([node, bin, 'db-export', a], { env: tasksEnv(src.url), watchNode: true });
      exp.tasks.push(m.seconds);
      exp.peak.push(m.nodePeakMb!);
    };
    const runFull = async () => {
      const m = await measure([node, bin, 'db-export', `${a}.full`, '--verify'], { env: tasksEnv(src.url), watchNode: true });
      full.tasks.push(m.seconds);
      full.peak.push(m.nodePeakMb!);
    };
    const runHand = async () => {
      const s = (await measure(['pg_dump', ...conn, '--format=custom', '--dbname', src.name, '--file', b], { env: pgEnv })).seconds;
      exp.hand.push(s);
      full.hand.push(s);
    };
    if (i % 2) {
      await runHand();
      await runTasks();
      await runFull();
    } else {
      await runFull();
      await runTasks();
      await runHand();
    }
    dumpBytes = fs.statSync(a).size;
    fs.rmSync(`${a}.full`);
    if (i > 0) {
      fs.rmSync(a);
      fs.rmSync(b);
    }
  }
  const dump = path.join(work, 'tasks-0.dump');

  for (let i = 0; i < RUNS; i++) {
    const dst = await createTestDatabaseInfo(info, `bench_dst${i}`);
    const runTasks = async () => {
      const m = await measure([node, bin, 'db-import', dump, '--yes'], { env: tasksEnv(dst.url), watchNode: true });
      imp.tasks.push(m.seconds);
      imp.peak.push(m.nodePeakMb!);
    };
    const runHand = async () => {
      // The same restore by hand, into a fresh database: create it, pg_restore with the same flags.
      const fresh = `${dst.name}_hand`;
      const t0 = process.hrtime.bigint();
      await measure(
        [
          'psql',
          ...connAs(dst.user),
          '-X',
          '--dbname',
          'postgres',
          '-c',
          `CREATE DATABASE ${quoteIdent(fresh)} OWNER ${quoteIdent(dst.user)}`,
        ],
        { env: { ...process.env, PGPASSWORD: dst.password } },
      );
      await measure(
        ['pg_restore', ...connAs(dst.user), '--no-owner', '--no-acl', `--role=${dst.user}`, '--exit-on-error', '--dbname', fresh, dump],
        { env: { ...process.env, PGPASSWORD: dst.password } },
      );
      imp.hand.push(Number(process.hrtime.bigint() - t0) / 1e9);
      await adminQuery(info, 'postgres', `DROP DATABASE ${quoteIdent(fresh)}`);
    };
    if (i % 2) {
      await runHand();
      await runTasks();
    } else {
      await runTasks();
      await runHand();
    }
    if (i === 0) {
      const got = await tableFingerprint(info, dst.name);
      if (JSON.stringify(got) !== JSON.stringify(srcPrint)) throw new Error('imported database differs from the source');
    }
    await adminQuery(info, 'postgres', `DROP DATABASE ${quoteIdent(dst.name)}`);
  }

  const f = (x: number) => x.toFixed(2);
  const ratio = (t: number[], h: number[]) => median(t) / median(h);
  const peak = Math.max(...exp.peak, ...full.peak, ...imp.peak);
  const rows = [
    ['db-export (the default: TOC and last block checked)', exp, 'pg_dump -Fc'],
    ['db-export --verify (every block read)', full, 'pg_dump -Fc'],
    ['db-import --yes', imp, 'createdb + pg_restore --no-owner --no-acl --role --exit-on-error'],
  ] as const;
  const md = [
    `pgbench -i -s ${scale}: ${(scale * 100_000).toLocaleString('en')} accounts, database ${sizeMb} MB, ` +
      `custom dump ${(dumpBytes / 1048576).toFixed(0)} MB; URL mode against a local PostgreSQL 15; medians of ${RUNS}, runs alternated. ` +
      `${machine()}; load average (1 min) at the end ${os.loadavg()[0]!.toFixed(1)}, the benchmark's own processes included.`,
    '',
    '| operation | tasks (s) | by hand (s) | ratio | node peak RSS (MB) | baseline |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      ([name, m, base]) =>
        `| ${name} | ${f(median(m.tasks))} | ${f(median(m.hand))} | ${ratio(m.tasks, m.hand).toFixed(2)}× ` +
        `| ${Math.max(...m.peak).toFixed(0)} | \`${base}\` |`,
    ),
    '',
    `Targets: node peak RSS < 150 MB — ${peak < 150 ? 'met' : 'NOT met'} ` +
      `(${peak.toFixed(0)} MB, VmHWM of the node process alone, sampled every 50 ms); ` +
      `wall time ≤ 1.1× by hand — export ${ratio(exp.tasks, exp.hand) <= 1.1 ? 'met' : 'NOT met'} ` +
      `(${ratio(exp.tasks, exp.hand).toFixed(2)}×; ` +
      `with --verify ${ratio(full.tasks, full.hand) <= 1.1 ? 'met' : 'NOT met'}, ${ratio(full.tasks, full.hand).toFixed(2)}×), ` +
      `import ${ratio(imp.tasks, imp.hand) <= 1.1 ? 'met' : 'NOT met'} (${ratio(imp.tasks, imp.hand).toFixed(2)}×).`,
    '',
    'What the task does beyond the bare command: export starts Node and zx, reads the server and pg_dump versions while pg_dump runs, ' +
      'writes to a temp file, reads its table of contents and its last data block ' +
      '(`pg_restore --list`, then `--data-only -t <last table> -f /dev/null`: the file is whole) ' +
      'before renaming it (`--verify`: every block, `pg_restore -f /dev/null`); ' +
      'import reads the archive header, versions and the target side by side, restores into a new database and swaps it in ' +
      '(both renames in one transaction, then drops the old one). ' +
      'The by-hand commands are typed as a user would, through PATH (on Debian, the pg_wrapper script); ' +
      'the task runs the versioned binaries behind it (about 25 ms less per call). Raw runs (s): ' +
      `export tasks ${exp.tasks.map(f).join(', ')} / --verify ${full.tasks.map(f).join(', ')} / by hand ${exp.hand.map(f).join(', ')}; ` +
      `import tasks ${imp.tasks.map(f).join(', ')} / by hand ${imp.hand.map(f).join(', ')}.`,
  ].join('\n');
  writeSection('database', md);
  process.stdout.write(`${md}\n`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
  await stop();
}
