// Shared by the bench scripts: medians, whole-process timing with peak memory, and writing one section of docs/benchmarks.md.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Timing {
  seconds: number;
  maxRssKb: number;
  code: number;
  stderr: string;
}

/** Runs a whole process under GNU time: wall seconds and the peak RSS of the process (the largest of it and its waited-for children). */
export function timeProcess(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Timing {
  const out = path.join(fs.mkdtempSync('/tmp/bench-'), 'time');
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', out, ...argv], {
    cwd: opts.cwd ?? root,
    env: opts.env ?? process.env,
    input: opts.input,
    stdio: [opts.input ? 'pipe' : 'ignore', 'ignore', 'pipe'],
  });
  const [sec = '0', rss = '0'] = fs.readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ');
  if (r.status !== 0) process.stderr.write(`bench: ${argv.join(' ')} exited ${r.status}: ${String(r.stderr).slice(-500)}\n`);
  return { seconds: Number(sec), maxRssKb: Number(rss), code: r.status ?? 1, stderr: String(r.stderr ?? '') };
}

/** Replaces the <!-- bench:NAME --> block of docs/benchmarks.md. */
export function writeSection(name: string, markdown: string): void {
  const file = path.join(root, 'docs', 'benchmarks.md');
  const text = fs.readFileSync(file, 'utf8');
  const re = new RegExp(`<!-- bench:${name} -->[\\s\\S]*?<!-- /bench:${name} -->`);
  const block = `<!-- bench:${name} -->\n${markdown.trim()}\n<!-- /bench:${name} -->`;
  fs.writeFileSync(file, re.test(text) ? text.replace(re, block) : `${text.trim()}\n\n${block}\n`);
}

export const machine = (): string => {
  const cpu = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown cpu';
  return `${new Date().toISOString().slice(0, 10)}, ${cpu}, ${spawnSync('nproc').stdout.toString().trim()} cores, Node ${process.version}`;
};

export interface Measured {
  seconds: number;
  nodePeakMb?: number;
  stderr: string;
}

/** Wall time of a process; with watchNode, the peak RSS of that process alone (VmHWM sampled from /proc), not of its children. */
export function measure(argv: string[], o: { env: NodeJS.ProcessEnv; cwd?: string; watchNode?: boolean }): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0]!, argv.slice(1), { env: o.env, cwd: o.cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let hwmKb = 0;
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
      } catch {
        /* exited */
      }
    };
    const timer = o.watchNode ? setInterval(sample, 25) : undefined;
    child.on('error', reject);
    child.on('exit', (code) => {
      if (timer) clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (code !== 0) reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.slice(-1500)}`));
      else resolve({ seconds, stderr, ...(o.watchNode ? { nodePeakMb: hwmKb / 1024 } : {}) });
    });
  });
}
