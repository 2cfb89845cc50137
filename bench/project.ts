// The benches' project copies run the project's own tasks.ts with a few settings replaced, through the public API:
// the copy's tasks.ts becomes a small file that imports `config` and `tasks` from the original (kept beside it as
// tasks.project.ts) and calls `main` from scripts/index.ts with the changed config. The real bin still runs it.
import fs from 'node:fs';
import path from 'node:path';
import type { BackupPart, ProjectConfig } from '../scripts/index.ts';
import { config } from '../tasks.ts';

/** The project's backup parts with the filestore volume replaced by the host folder `folder` (relative to the root). */
export function filestoreAsFolder(folder: string): BackupPart[] {
  return config.backupParts.map((p): BackupPart => (p.name === 'filestore' ? { name: 'filestore', kind: 'path', path: folder } : p));
}

/** Makes the project copy `dir` run its own tasks.ts with `overrides` (plain data; an undefined value removes the setting). */
export function overrideConfig(dir: string, overrides: Partial<ProjectConfig>): void {
  const fields = Object.entries(overrides).map(([k, v]) => `  ${k}: ${v === undefined ? 'undefined' : JSON.stringify(v)},`);
  fs.renameSync(path.join(dir, 'tasks.ts'), path.join(dir, 'tasks.project.ts'));
  fs.writeFileSync(
    path.join(dir, 'tasks.ts'),
    `// Written by bench/project.ts: the project's tasks.ts (tasks.project.ts) with some settings replaced.
import { main, serviceTasks } from './scripts/index.ts';

// bin/tasks.mjs marks its run with this global, which makes a tasks.ts run main as it loads: hidden while the original
// loads, so only this file runs it. (The bin's cache key does not cover tasks.project.ts: it is written once, here.)
const g = globalThis as { __composeTasksBin?: { root: string } };
const bin = g.__composeTasksBin;
delete g.__composeTasksBin;
const { config, tasks } = await import('./tasks.project.ts');
g.__composeTasksBin = bin;

const controller = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => controller.abort(sig));
process.exitCode = await main({
  argv: process.argv.slice(2),
  env: process.env,
  root: bin?.root ?? import.meta.dirname,
  tasks,
  serviceTasks,
  config: {
    ...config,
${fields.join('\n')}
  },
  stdout: process.stdout,
  stderr: process.stderr,
  stdinIsTTY: Boolean(process.stdin.isTTY),
  signal: controller.signal,
});
`,
  );
}
