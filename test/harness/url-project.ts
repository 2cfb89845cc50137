// A project folder for URL-mode runs (no containers: a database on a throwaway PostgreSQL and a host folder of addons),
// and a small live database whose per-table fingerprints a fault must leave exactly as they were.
import fs from 'node:fs';
import path from 'node:path';
import { adminQuery, createTestDatabaseInfo, repoRoot, tableFingerprint, type TestDatabase } from './pg.ts';
import type { PgInfo } from './services.ts';

/** Fills the empty folder `root`: .env.template, an .env, addons/my_module ('current'), backup/. Returns root. */
export function urlModeRoot(root: string): string {
  fs.copyFileSync(path.join(repoRoot, '.env.template'), path.join(root, '.env.template'));
  fs.writeFileSync(path.join(root, '.env'), 'POSTGRES_PASSWORD=unused-in-url-mode\n', { mode: 0o600 });
  fs.mkdirSync(path.join(root, 'addons', 'my_module'), { recursive: true });
  fs.writeFileSync(path.join(root, 'addons', 'my_module', '__manifest__.py'), "{'name': 'current'}\n");
  fs.mkdirSync(path.join(root, 'backup'));
  return root;
}

/** A database of the test role with one 300-row table, and its fingerprint. */
export async function smallLiveDatabase(
  info: PgInfo,
  prefix: string,
): Promise<{ db: TestDatabase; print: Awaited<ReturnType<typeof tableFingerprint>> }> {
  const db = await createTestDatabaseInfo(info, prefix);
  await adminQuery(
    info,
    db.name,
    `SET ROLE ${db.user}; CREATE TABLE keep (id int primary key, note text); ` +
      "INSERT INTO keep SELECT g, 'row ' || g FROM generate_series(1, 300) g",
  );
  return { db, print: await tableFingerprint(info, db.name) };
}
