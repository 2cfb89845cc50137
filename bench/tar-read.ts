// Benchmark: reading a ~1 GB backup archive with the hand-written tar reader (main's scripts/backup/archive.ts) vs tar-stream
// (this tree's): checkArchive (gunzip + tar + sha256 of every part) and a bare walkArchive (gunzip + tar, sinks do nothing).
// Whole-process wall time and peak RSS (GNU time), medians of `runs`, old and new interleaved.
//   npx tsx bench/tar-read.ts [sizeMb=1024] [runs=3]     (rewrites the <!-- bench:tar-read --> section of docs/benchmarks.md)
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { machine, median, root, writeSection } from './report.ts';

type Mode = 'check' | 'walk';
interface Timing {
  seconds: number;
  cpuSeconds: number;
  maxRssKb: number;
}

/** A whole process under GNU time: wall and CPU (user + system) seconds and peak RSS (CPU time is steadier on a shared machine). */
function timed(argv: string[]): Timing {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bench-')), 'time');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M %U %S', '-o', out, ...argv], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${String(r.stderr).slice(-500)}`);
  const [e, m, u, sys] = fs.readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
  return { seconds: e!, maxRssKb: m!, cpuSeconds: u! + sys! };
}

/** In a child process: one read of the archive with the given archive module. */
async function child(module: string, mode: Mode, archive: string): Promise<void> {
  const a = (await import(pathToFileURL(module).href)) as typeof import('../scripts/backup/archive.ts');
  if (mode === 'check') await a.checkArchive(archive);
  else await a.walkArchive(archive, () => ({ data: () => undefined, end: () => undefined }));
}

/** main's archive.ts, its relative imports pointed at this tree, in a temp folder. */
function baseline(dir: string): string {
  const src = execFileSync('git', ['show', 'main:scripts/backup/archive.ts'], { cwd: root, encoding: 'utf8' });
  const file = path.join(dir, 'archive-main.ts');
  const abs = (rel: string) => path.join(root, 'scripts', 'backup', rel);
  fs.writeFileSync(
    file,
    src.replace(/from '(\.\.?\/[^']+)'/g, (_m, rel: string) => `from '${abs(rel)}'`),
  );
  return file;
}

/** A backup archive like a real one: manifest, an incompressible dump (stored), text (deflated), ~sizeMb in all. */
async function makeArchive(dir: string, sizeMb: number): Promise<string> {
  const { hashFile, writeArchive } = await import('../scripts/backup/archive.ts');
  const dump = path.join(dir, 'database.dump');
  const text = path.join(dir, 'addons.tar');
  const fd = fs.openSync(dump, 'w');
  for (let i = 0; i < Math.round(sizeMb * 0.9); i++) fs.writeSync(fd, crypto.randomBytes(1 << 20));
  fs.closeSync(fd);
  const line = Buffer.from('<record id="invoice_line_42" model="account.move.line"><field name="name">x</field></record>\n');
  fs.writeFileSync(text, Buffer.concat(Array.from({ length: Math.ceil((sizeMb * 0.1 * 1048576) / line.length) }, () => line)));
  const parts = [
    { name: 'database', kind: 'database', file: 'database.dump', format: 'pg_dump-custom', ...(await hashFile(dump)) },
    { name: 'addons', kind: 'path', file: 'addons.tar', format: 'tar', ...(await hashFile(text)) },
  ];
  const manifest = {
    format: 'compose-tasks-backup',
    version: 1,
    name: 'bench_backup_2026-01-02_03-04-05',
    createdAt: '2026-01-02T03:04:05.000Z',
    appEnv: 'bench',
    project: 'bench',
    database: 'bench',
    images: {},
    tool: { name: 'compose-tasks', version: 'bench' },
    reason: 'manual',
    parts,
  };
  const out = path.join(dir, 'bench_backup_2026-01-02_03-04-05.tar.gz');
  await writeArchive(out, [
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)), level: 1 },
    { name: 'database.dump', file: dump, level: 0 },
    { name: 'addons.tar', file: text, level: 1 },
  ]);
  fs.rmSync(dump);
  fs.rmSync(text);
  return out;
}

async function main(sizeMb: number, runs: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-tar-read-'));
  try {
    const impls = { 'hand-written (main)': baseline(dir), 'tar-stream': path.join(root, 'scripts', 'backup', 'archive.ts') };
    process.stderr.write(`writing a ${sizeMb} MB archive ...\n`);
    const archive = await makeArchive(dir, sizeMb);
    const gz = fs.statSync(archive).size;
    const load0 = os.loadavg()[0]!;
    const got = new Map<string, Timing[]>();
    for (let r = 0; r < runs; r++)
      for (const mode of ['check', 'walk'] as Mode[])
        for (const [label, module] of Object.entries(impls)) {
          const t = timed([process.execPath, '--import', 'tsx', __self, '--child', module, mode, archive]);
          process.stderr.write(
            `${mode} ${label}: ${t.seconds} s, cpu ${t.cpuSeconds.toFixed(2)} s, ${(t.maxRssKb / 1024).toFixed(0)} MB\n`,
          );
          got.set(`${mode} ${label}`, [...(got.get(`${mode} ${label}`) ?? []), t]);
        }
    const load1 = os.loadavg()[0]!;
    const sec = (k: string) => median(got.get(k)!.map((t) => t.seconds));
    const cpu = (k: string) => median(got.get(k)!.map((t) => t.cpuSeconds));
    const rss = (k: string) => median(got.get(k)!.map((t) => t.maxRssKb / 1024));
    const rows = (['check', 'walk'] as Mode[]).flatMap((mode) =>
      Object.keys(impls).map((label) => {
        const k = `${mode} ${label}`;
        const ratio = sec(k) / sec(`${mode} hand-written (main)`);
        const cpuRatio = cpu(k) / cpu(`${mode} hand-written (main)`);
        const what =
          mode === 'check' ? '`checkArchive` (gunzip, tar, sha256 of each part)' : '`walkArchive`, sinks do nothing (gunzip, tar)';
        const all = got
          .get(k)!
          .map((t) => t.seconds.toFixed(2))
          .join(', ');
        const cells = [what, label, `${sec(k).toFixed(2)} s`, `${ratio.toFixed(2)}×`, `${cpu(k).toFixed(2)} s`, `${cpuRatio.toFixed(2)}×`];
        return `| ${[...cells, `${rss(k).toFixed(0)} MB`, all].join(' | ')} |`;
      }),
    );
    const ratios = (f: (k: string) => number) =>
      Math.max(...(['check', 'walk'] as Mode[]).map((m) => f(`${m} tar-stream`) / f(`${m} hand-written (main)`)));
    const worst = ratios(sec);
    const worstCpu = ratios(cpu);
    const md = `
### Tar reading: hand-written vs tar-stream

${machine()}. Archive: ${(gz / 1048576).toFixed(0)} MB .tar.gz written by writeArchive (manifest, a ${Math.round(sizeMb * 0.9)} MB \
incompressible dump stored, ${Math.round(sizeMb * 0.1)} MB of XML-like text deflated), read from the page cache.
Each read is a whole process (\`node --import tsx\`, so ~0.3 s of start-up in every figure); medians of ${runs} runs,
old and new interleaved; wall time, CPU time (user + system, all threads) and peak RSS from GNU time.
The baseline is \`git show main:scripts/backup/archive.ts\` run from a temp file.

| read | tar reader | median wall time | vs hand-written | median CPU time | vs hand-written | median peak RSS \
| wall times of the runs (s) |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Slowest ratio: wall ${worst.toFixed(2)}×, CPU ${worstCpu.toFixed(2)}× \
(limit 1.5×: ${Math.max(worst, worstCpu) <= 1.5 ? 'within' : '**over**'}).
tar-stream hands each member's bytes on in the chunks gunzip made (1 MB) and waits for the sink, so peak RSS stays flat.
Wall times swing with the machine's load: a first run of 3 (2026-12-03, load 7.7 to 10.9) measured tar-stream at 1.27× (check)
and 1.38× (bare walk); later runs at load 4 to 7 measured it at 0.94× to 1.10×, and letting 4 MB wait in the parser (so gunzip
can run ahead) changed nothing (1.03× and 0.99× against without). CPU time, steadier, puts the two readers within 6% of each other.
What a user may notice: members after the end-of-archive blocks are now read (the hand-written reader stopped at the
first zero block, so a member could hide behind it; junk there is now refused as a bad checksum), a PAX header over 4 MB
is refused as corrupt, and a type flag tar-stream does not name is reported as type ?.
Load average (1 min) at the start and the end: ${load0.toFixed(1)} and ${load1.toFixed(1)},
on ${os.cpus().length} cores shared with other jobs.
Run: \`npx tsx bench/tar-read.ts [sizeMb] [runs]\`.
`;
    writeSection('tar-read', md);
    process.stdout.write(md);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const __self = new URL(import.meta.url).pathname;
if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4] as Mode, process.argv[5]!);
else await main(Number(process.argv[2] ?? 1024), Number(process.argv[3] ?? 3));
