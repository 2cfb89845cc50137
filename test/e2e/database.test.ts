// End to end in compose mode (client tools inside the db container) on the stand-in images: migrate, seed, export, reset, import.
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { makeProject, type TestProject } from '../harness/project.ts';
import { describeE2E } from '../harness/e2e.ts';
import { errorLines } from '../harness/expect.ts';

const docker = inject('docker');
const show = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

const COUNTS = `SELECT string_agg(t || '=' || n, ' ' ORDER BY t) FROM (
  SELECT 'partners' t, count(*) n FROM res_partner UNION ALL
  SELECT 'products', count(*) FROM product_product UNION ALL
  SELECT 'orders', count(*) FROM sale_order UNION ALL
  SELECT 'lines', count(*) FROM sale_order_line) x`;

describeE2E('database tasks in compose mode on a real Docker engine', () => {
  let p: TestProject;
  const user = () => p.env.POSTGRES_USER ?? 'odoo';
  const db = () => p.env.POSTGRES_DB ?? 'odoo';
  const query = async (sql: string) => {
    const r = await p.run(['psql', '--', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
    expect(r.code, show(r)).toBe(0);
    return r.stdout.trim();
  };
  beforeAll(async () => {
    p = await makeProject({ docker });
    const r = await p.run(['dev']);
    if (r.code !== 0) throw new Error(show(r));
  });
  afterAll(async () => {
    await p?.cleanup();
  });

  it('migrate creates the schema, seed loads customers, products and orders, and a second seed adds no duplicates', async () => {
    const m = await p.run(['migrate']);
    expect(m.code, show(m)).toBe(0);
    expect(m.stderr).toMatch(/run --rm -T odoo odoo --database=\S+ --update=all --stop-after-init/);
    const s1 = await p.run(['seed']);
    expect(s1.code, show(s1)).toBe(0);
    expect(s1.stderr).toContain('exec -T db psql');
    const seeded = await query(COUNTS);
    expect(seeded).toBe('lines=16 orders=8 partners=16 products=10');
    const s2 = await p.run(['seed']);
    expect(s2.code, show(s2)).toBe(0);
    expect(await query(COUNTS)).toBe(seeded);
  });

  it('db-export through exec -T writes a valid custom archive; reset-db wipes changes; db-import brings them back', async () => {
    await query(`INSERT INTO res_partner (name, ref, type, is_company, active) VALUES ('Export Marker', 'E2E-1', 'contact', true, true)`);
    const before = await query(COUNTS);
    expect(before).toBe('lines=16 orders=8 partners=17 products=10');

    const e = await p.run(['db-export', 'backup/e2e.dump']);
    expect(e.code, show(e)).toBe(0);
    const file = path.join(p.dir, 'backup/e2e.dump');
    expect(fs.readFileSync(file).subarray(0, 5).toString()).toBe('PGDMP');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(e.stderr).toMatch(/exec -T db pg_dump --username \S+ --format=custom/);
    expect(e.stderr).not.toContain(p.env.POSTGRES_PASSWORD!);

    const reset = await p.run(['reset-db', '--yes']);
    expect(reset.code, show(reset)).toBe(0);
    expect(await query(COUNTS)).toBe('lines=16 orders=8 partners=16 products=10');

    const i = await p.run(['db-import', 'backup/e2e.dump', '--yes']);
    expect(i.code, show(i)).toBe(0);
    expect(await query(COUNTS)).toBe(before);
    expect(await query(`SELECT count(*) FROM pg_database WHERE datname LIKE '${db()}\\_%'`)).toBe('0');
    const owners = await query(`SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'`);
    expect(owners).toBe(user());
  });

  it('parallel import (--jobs 2) copies the dump into the db container, restores, and removes the copy', async () => {
    await query(`DELETE FROM sale_order_line`);
    const i = await p.run(['db-import', 'backup/e2e.dump', '--yes', '--jobs', '2']);
    expect(i.code, show(i)).toBe(0);
    expect(await query(COUNTS)).toBe('lines=16 orders=8 partners=17 products=10');
    const ls = await p.compose(['exec', '-T', 'db', 'sh', '-c', 'ls /tmp']);
    expect(ls.stdout).not.toMatch(/compose-tasks-restore/);
  });

  it('plain .sql.gz round trip in compose mode', async () => {
    const e = await p.run(['db-export', 'backup/e2e.sql.gz']);
    expect(e.code, show(e)).toBe(0);
    await query(`DELETE FROM sale_order_line; DELETE FROM sale_order`);
    const i = await p.run(['db-import', 'backup/e2e.sql.gz', '--yes']);
    expect(i.code, show(i)).toBe(0);
    expect(await query(COUNTS)).toBe('lines=16 orders=8 partners=17 products=10');
  });

  it('a truncated dump is refused and the database is left as it was', async () => {
    const full = fs.readFileSync(path.join(p.dir, 'backup/e2e.dump'));
    fs.writeFileSync(path.join(p.dir, 'backup/cut.dump'), full.subarray(0, Math.floor(full.length / 2)));
    const before = await query(COUNTS);
    const i = await p.run(['db-import', 'backup/cut.dump', '--yes']);
    expect(i.code).not.toBe(0);
    expect(errorLines(i.stderr), i.stderr).toHaveLength(1);
    expect(await query(COUNTS)).toBe(before);
  });
});
