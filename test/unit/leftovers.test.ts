import { describe, expect, it } from 'vitest';
import { leftoverDatabases } from '../../scripts/backup/leftovers.ts';

describe('leftoverDatabases: what the sweep may drop', () => {
  const dead = 2_000_000_000; // no such pid
  it("only the project's own database's side copies: another project's restore on a shared server is left alone", () => {
    const names = [
      'odoo_restore_20261202021502',
      'odoo_restore_20261202021502_2',
      `odoo_import_${dead}`,
      'shop_restore_20261202021502',
      `odoo_staging_import_${dead}`,
      'odoo_old_20261202021502',
      'odoo_failed_20261202021502',
    ];
    expect(leftoverDatabases(names, 'odoo')).toEqual([
      'odoo_restore_20261202021502',
      'odoo_restore_20261202021502_2',
      `odoo_import_${dead}`,
    ]);
  });
  it('a db-import of a live process is not a leftover; a name cut to 63 bytes matches by its prefix', () => {
    expect(leftoverDatabases([`odoo_import_${process.pid}`], 'odoo')).toEqual([]);
    const long = 'x'.repeat(60);
    const cut = `${long.slice(0, 63 - '_restore_20261202021502'.length)}_restore_20261202021502`;
    expect(cut).toHaveLength(63);
    expect(leftoverDatabases([cut], long)).toEqual([cut]);
    expect(leftoverDatabases([cut], 'y'.repeat(60))).toEqual([]);
  });
});
