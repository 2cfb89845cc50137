// The backup store: one meaning of a typed name, one listing, one free-space check.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertFree, bareName, localBackups, normalizeName } from '../../scripts/backup/store.ts';
import { TaskError } from '../../scripts/core/errors.ts';

describe('backup store', () => {
  it('a typed name may end in .tar.gz or .tgz or be a path; anything else is refused naming the expected shape', () => {
    const n = 'odoo_backup_2026-01-01_00-00-00';
    for (const typed of [n, `${n}.tar.gz`, `${n}.tgz`, `backup/${n}.tar.gz`]) expect(normalizeName(typed)).toBe(n);
    expect(bareName(' latest ')).toBe('latest');
    expect(() => normalizeName('odoo.tar.gz')).toThrow(/expected <project>_backup_YYYY-MM-DD_HH-MM-SS/);
  });

  it('lists complete archives only, newest first by the time in the name', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-store-'));
    for (const f of [
      'odoo_backup_2026-01-01_00-00-00.tar.gz',
      'odoo_backup_2026-03-01_00-00-00.tar.gz',
      '.odoo_backup_2026-04-01_00-00-00.tar.gz.download-123',
      '.tmp-odoo_backup_2026-05-01_00-00-00.tar.gz',
      'notes.txt',
    ])
      fs.writeFileSync(path.join(dir, f), 'x');
    fs.mkdirSync(path.join(dir, 'odoo_backup_2026-06-01_00-00-00.tar.gz'));
    expect(localBackups(dir).map((b) => b.name)).toEqual(['odoo_backup_2026-03-01_00-00-00', 'odoo_backup_2026-01-01_00-00-00']);
    expect(localBackups(path.join(dir, 'missing'))).toEqual([]);
  });

  it('too little free space is refused with both figures and exit 6, before anything is written', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-store-'));
    expect(() => assertFree(dir, 1, 'download x')).not.toThrow();
    try {
      assertFree(dir, Number.MAX_SAFE_INTEGER, 'download x');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TaskError);
      expect((e as TaskError).message).toMatch(/not enough free space in .* to download x: .* needed, .* free/);
      expect((e as TaskError).exitCode).toBe(6);
    }
  });
});
