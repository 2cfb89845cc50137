// Start-up cost of `tasks --list` (the bin, service cache warm) against `npm run -s noop` on the same machine, interleaved.
import { machine, median, root, timeProcess, writeSection, type Timing } from './report.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const TARGET = 1.5;

const cases: Array<{ label: string; argv: string[] }> = [
  { label: '`node bin/tasks.mjs --list`', argv: [process.execPath, 'bin/tasks.mjs', '--list'] },
  { label: '`npm run -s noop` (baseline)', argv: ['npm', 'run', '-s', 'noop'] },
  { label: '`npx tsx tasks.ts --list` (for information)', argv: ['npx', 'tsx', 'tasks.ts', '--list'] },
];

// Warm-up: builds the bin's bundle and the service cache (compose config), fills the page cache.
for (const c of cases) timeProcess(c.argv, { cwd: root });

const results = cases.map(() => [] as Timing[]);
for (let i = 0; i < RUNS; i++) {
  cases.forEach((c, j) => {
    const t = timeProcess(c.argv, { cwd: root });
    if (t.code !== 0) throw new Error(`${c.label} exited ${t.code}`);
    results[j]!.push(t);
  });
}

const med = results.map((r) => median(r.map((t) => t.seconds)));
const rss = results.map((r) => median(r.map((t) => t.maxRssKb)));
const ratio = med[0]! / med[1]!;
const rows = cases.map(
  (c, j) => `| ${c.label} | ${med[j]!.toFixed(3)} s | ${(rss[j]! / 1024).toFixed(0)} MB | ${(med[j]! / med[1]!).toFixed(2)}× |`,
);
const md = `### Start-up: \`tasks --list\`

${machine()}. ${RUNS} runs of each, interleaved, after one warm-up run each (bundle and service cache built).
Medians of whole-process wall time (GNU time) and peak RSS.

| Command | Median wall time | Peak RSS | vs \`npm run -s noop\` |
|---|---|---|---|
${rows.join('\n')}

Target: \`tasks --list\` at most ${TARGET}× \`npm run -s noop\`: **${ratio.toFixed(2)}×, ${ratio <= TARGET ? 'met' : 'missed'}**.
The bin runs an esbuild bundle of tasks.ts cached by the sources' size and mtime, and the per-service
targets come from a cache of \`compose config\` keyed by the compose and env files, so a warm
\`--list\` starts no TypeScript loader and no docker process. Run: \`npx tsx bench/startup.ts\`.`;

writeSection('startup', md);
process.stdout.write(`${md}\n`);
