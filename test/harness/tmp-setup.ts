// Each test file gets its own TMPDIR, removed when the file ends: temp folders made by tests (and the tools they run) never pile up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-test-'));
fs.chmodSync(dir, 0o755);
process.env.TMPDIR = dir;
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
