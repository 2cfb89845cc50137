#!/usr/bin/env node
// The `tasks` bin: runs tasks.ts from a bundle cached by the sources' size and mtime, so start-up skips the TypeScript loader.
// The cache is rebuilt (esbuild, which tsx ships) whenever tasks.ts or scripts/ change; if that fails, tsx runs tasks.ts directly.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
globalThis.__composeTasksBin = { root };

function sourcesKey() {
  const h = crypto.createHash('sha256');
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) {
        const s = fs.statSync(p);
        h.update(`${p}\0${s.size}\0${s.mtimeMs}\0`);
      }
    }
  };
  const t = fs.statSync(path.join(root, 'tasks.ts'));
  h.update(`tasks.ts\0${t.size}\0${t.mtimeMs}\0`);
  walk(path.join(root, 'scripts'));
  return h.digest('hex').slice(0, 16);
}

async function bundle() {
  if (process.env.COMPOSE_TASKS_NO_BUNDLE) return undefined;
  const dir = path.join(root, '.cache', 'compose-tasks');
  const out = path.join(dir, `tasks-${sourcesKey()}.mjs`);
  if (fs.existsSync(out)) return out;
  try {
    const esbuild = await import('esbuild');
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    await esbuild.build({
      entryPoints: [path.join(root, 'tasks.ts')],
      outfile: tmp,
      bundle: true,
      packages: 'external',
      platform: 'node',
      format: 'esm',
      target: 'node20',
      logLevel: 'silent',
    });
    fs.renameSync(tmp, out);
    for (const f of fs.readdirSync(dir))
      if (/^tasks-[0-9a-f]+\.mjs$/.test(f) && path.join(dir, f) !== out) fs.rmSync(path.join(dir, f), { force: true });
    return out;
  } catch {
    return undefined;
  }
}

const built = await bundle();
if (built) {
  await import(pathToFileURL(built).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../tasks.ts');
}
