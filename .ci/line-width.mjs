#!/usr/bin/env node
// Lists every line of the tree's .ts/.mjs/.js files (tracked, or new and not ignored) wider than biome.json's
// formatter.lineWidth, as `file:line: N columns`, and exits 1 if there is any. Biome wraps code but cannot break
// strings, template literals, regexes or comments: this catches those. Width is counted in characters (code points).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const width = JSON.parse(readFileSync(path.join(root, 'biome.json'), 'utf8')).formatter?.lineWidth;
if (!Number.isInteger(width) || width <= 0) {
  console.error('line-width: biome.json has no formatter.lineWidth');
  process.exit(2);
}

const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  .split('\0')
  .filter((f) => /\.(ts|mjs|js)$/.test(f));

const over = [];
for (const file of files) {
  let text;
  try {
    text = readFileSync(path.join(root, file), 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') continue; // deleted in the work tree, not yet staged
    throw err;
  }
  text.split(/\r?\n/).forEach((line, i) => {
    const columns = [...line].length;
    if (columns > width) over.push(`${file}:${i + 1}: ${columns} columns`);
  });
}

if (over.length) {
  console.error(over.join('\n'));
  console.error(`${over.length} line(s) over ${width} columns: split the string, or wrap the comment`);
  process.exit(1);
}
