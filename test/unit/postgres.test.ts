// The PostgreSQL argv builders and target parsing, to the exact argument; no password ever on argv.
import { describe, expect, it } from 'vitest';
import {
  assertDumpCompatible,
  clientCmd,
  hostClientTools,
  lastDataEntry,
  swapDatabasesSql,
  terminateSessionsSql,
  explainPgError,
  sniffDumpFormat,
  parseDatabaseUrl,
  parseVersion,
  pgDumpArgs,
  pgRestoreArgs,
  pgTarget,
  psqlArgs,
  formatFromName,
  parseDfAvailable,
  type PgTarget,
} from '../../scripts/tools/postgres.ts';
import { expandVars, fileStamp } from '../../scripts/tasks/database.ts';
import type { ComposeProject } from '../../scripts/tools/compose.ts';
import { CommandError, ExitCode, TaskError } from '../../scripts/core/errors.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

const v2: ComposeProject = { flavor: 'v2', root: '/srv/app', files: ['compose/compose.yaml'] };
const v1: ComposeProject = { flavor: 'v1', root: '/srv/app', files: [] };
const composeT: PgTarget = { mode: 'compose', service: 'db', user: 'odoo', password: 's3cret-pw', database: 'odoo' };
const urlT = parseDatabaseUrl('postgres://app:p%40ss%2Fword@db.example.com:6543/shop?sslmode=require');

function envOf(values: Record<string, string>) {
  return { env: { get: (k: string) => values[k] || undefined } } as unknown as Parameters<typeof pgTarget>[0];
}

describe('free space on the database server', () => {
  it("reads df -Pk's available column, in bytes; an error or no output is unknown", () => {
    const out =
      'Filesystem     1024-blocks    Used Available Capacity Mounted on\n/dev/sda1         40511148 9087532  29337328      24% /\n';
    expect(parseDfAvailable(out)).toBe(29337328 * 1024);
    expect(parseDfAvailable('')).toBeUndefined();
    expect(parseDfAvailable('df: /var/lib/postgresql/data: No such file or directory\n')).toBeUndefined();
  });
});

describe('targets', () => {
  it('URL mode when DATABASE_URL is set: the password is kept apart and the URL shown has none', () => {
    expect(urlT).toEqual({
      mode: 'url',
      host: 'db.example.com',
      port: 6543,
      user: 'app',
      password: 'p@ss/word',
      database: 'shop',
      url: 'postgres://app@db.example.com:6543/shop?sslmode=require',
      sslmode: 'require',
    });
    expect(pgTarget(envOf({ DATABASE_URL: 'postgresql://u:pw@h/d' }))).toMatchObject({
      mode: 'url',
      host: 'h',
      port: 5432,
      user: 'u',
      password: 'pw',
      database: 'd',
    });
  });

  it('compose mode otherwise, from DB_SERVICE (default db) and POSTGRES_USER/PASSWORD/DB', () => {
    expect(pgTarget(envOf({ POSTGRES_USER: 'odoo', POSTGRES_PASSWORD: 'x', POSTGRES_DB: 'prod' }))).toEqual({
      mode: 'compose',
      service: 'db',
      user: 'odoo',
      password: 'x',
      database: 'prod',
    });
    expect(pgTarget(envOf({ DB_SERVICE: 'postgres', POSTGRES_USER: 'u', POSTGRES_DB: 'd' }))).toMatchObject({ service: 'postgres' });
  });

  it('a bad DATABASE_URL is an invalid environment naming what to fix', () => {
    for (const bad of ['not a url', 'mysql://u:p@h/d', 'postgres://h/d', 'postgres://u:p@h/']) {
      try {
        parseDatabaseUrl(bad);
        expect.unreachable(bad);
      } catch (e) {
        expect(e).toBeInstanceOf(TaskError);
        expect((e as TaskError).exitCode).toBe(ExitCode.invalidEnv);
        expect((e as TaskError).message).toMatch(/DATABASE_URL/);
      }
    }
  });
});

describe("hostClientTools: past Debian's pg_wrapper", () => {
  it('a tool PATH resolves to pg_wrapper runs from the newest installed version; one found elsewhere first is left to PATH', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-pgwrap-'));
    try {
      const wrapper = path.join(root, 'usr/share/postgresql-common/pg_wrapper');
      fs.mkdirSync(path.dirname(wrapper), { recursive: true });
      fs.writeFileSync(wrapper, '#!/usr/bin/perl\n', { mode: 0o755 });
      const usrBin = path.join(root, 'usr/bin');
      const mine = path.join(root, 'mine');
      fs.mkdirSync(usrBin);
      fs.mkdirSync(mine);
      for (const tool of ['psql', 'pg_dump', 'pg_restore']) {
        fs.symlinkSync('../share/postgresql-common/pg_wrapper', path.join(usrBin, tool));
        for (const v of ['9.6', '13', '15']) {
          fs.mkdirSync(path.join(root, 'usr/lib/postgresql', v, 'bin'), { recursive: true });
          fs.writeFileSync(path.join(root, 'usr/lib/postgresql', v, 'bin', tool), '', { mode: 0o755 });
        }
      }
      fs.writeFileSync(path.join(mine, 'psql'), '#!/bin/sh\n', { mode: 0o755 });
      const tools = hostClientTools(`${mine}:${usrBin}`);
      expect(tools).toEqual({
        pg_dump: path.join(root, 'usr/lib/postgresql/15/bin/pg_dump'),
        pg_restore: path.join(root, 'usr/lib/postgresql/15/bin/pg_restore'),
      });
      const t = { ...urlT, tools };
      expect(clientCmd(undefined, t, 'pg_dump', ['--format=custom']).argv[0]).toBe(path.join(root, 'usr/lib/postgresql/15/bin/pg_dump'));
      expect(clientCmd(undefined, t, 'psql', ['-X']).argv[0]).toBe('psql');
      expect(hostClientTools(mine)).toEqual({});
      expect(hostClientTools(`${mine}:${usrBin}`, '/opt/pg16/bin')).toEqual({
        psql: '/opt/pg16/bin/psql',
        pg_dump: '/opt/pg16/bin/pg_dump',
        pg_restore: '/opt/pg16/bin/pg_restore',
      });
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('argv builders', () => {
  it('pg_dump: custom by default, plain without owner/ACL statements, gzip through pg_dump itself', () => {
    expect(pgDumpArgs({ database: 'odoo', format: 'custom' })).toEqual(['--format=custom', '--dbname', 'odoo']);
    expect(pgDumpArgs({ database: 'odoo', format: 'plain' })).toEqual(['--format=plain', '--no-owner', '--no-acl', '--dbname', 'odoo']);
    expect(pgDumpArgs({ database: 'odoo', format: 'plain-gz' })).toEqual([
      '--format=plain',
      '--no-owner',
      '--no-acl',
      '--compress=6',
      '--dbname',
      'odoo',
    ]);
    expect(['x.dump', 'x.sql', 'x.SQL.GZ', 'x.backup'].map(formatFromName)).toEqual(['custom', 'plain', 'plain-gz', 'custom']);
  });

  it('pg_restore: no owner, no ACL, as the app role, stop at the first error, parallel only when asked', () => {
    expect(pgRestoreArgs({ database: 'tmp', role: 'odoo' })).toEqual([
      '--no-owner',
      '--no-acl',
      '--role=odoo',
      '--exit-on-error',
      '--dbname',
      'tmp',
    ]);
    expect(pgRestoreArgs({ database: 'tmp', role: 'odoo', jobs: 1 })).toEqual([
      '--no-owner',
      '--no-acl',
      '--role=odoo',
      '--exit-on-error',
      '--dbname',
      'tmp',
    ]);
    expect(pgRestoreArgs({ database: 'tmp', role: 'odoo', jobs: 4, file: '/tmp/x.dump' })).toEqual([
      '--no-owner',
      '--no-acl',
      '--role=odoo',
      '--exit-on-error',
      '--jobs',
      '4',
      '--dbname',
      'tmp',
      '/tmp/x.dump',
    ]);
  });

  it('psql: no psqlrc, ON_ERROR_STOP, optional single transaction, queries unaligned and quiet', () => {
    expect(psqlArgs({ database: 'odoo', command: 'SELECT 1', query: true })).toEqual([
      '-XAtq',
      '-v',
      'ON_ERROR_STOP=1',
      '--dbname',
      'odoo',
      '-c',
      'SELECT 1',
    ]);
    expect(psqlArgs({ database: 'odoo', singleTransaction: true, file: '-' })).toEqual([
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      '--single-transaction',
      '--dbname',
      'odoo',
      '--file',
      '-',
    ]);
    expect(psqlArgs({ database: 'postgres', command: ['SELECT 1', 'SELECT 2'] })).toEqual([
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      '--dbname',
      'postgres',
      '-c',
      'SELECT 1',
      '-c',
      'SELECT 2',
    ]);
  });

  it('a swap renames both databases in one transaction, so a failure leaves both names as they were', () => {
    expect(swapDatabasesSql({ live: 'odoo', incoming: 'odoo_import_7', aside: 'odoo_old_7' })).toBe(
      'BEGIN; ALTER DATABASE "odoo" RENAME TO "odoo_old_7"; ALTER DATABASE "odoo_import_7" RENAME TO "odoo"; COMMIT;',
    );
    expect(swapDatabasesSql({ live: 'My "db"', incoming: 'b', aside: 'c' })).toContain('ALTER DATABASE "My ""db""" RENAME TO "c"');
  });

  it('ending sessions waits for each to be gone when a wait is given (PostgreSQL 14+), and names only that database', () => {
    expect(terminateSessionsSql('odoo', 5000)).toMatch(
      /^SELECT count\(pg_terminate_backend\(a\.pid, 5000\)\) FROM pg_stat_activity a WHERE a\.datname = 'odoo' AND/,
    );
    expect(terminateSessionsSql("o'db")).toMatch(
      /^SELECT count\(pg_terminate_backend\(a\.pid\)\) FROM pg_stat_activity a WHERE a\.datname = 'o''db' AND/,
    );
  });

  it('compose mode: exec -T in the db service, -U the app user, no password anywhere', () => {
    const cmd = clientCmd(v2, composeT, 'pg_dump', pgDumpArgs({ database: 'odoo', format: 'custom' }), {
      stdout: { file: '/b/x.dump.tmp-1', mode: 0o600 },
    });
    expect(cmd).toEqual({
      argv: [
        'docker',
        'compose',
        '--project-directory',
        '/srv/app',
        '-f',
        'compose/compose.yaml',
        'exec',
        '-T',
        'db',
        'pg_dump',
        '--username',
        'odoo',
        '--format=custom',
        '--dbname',
        'odoo',
      ],
      stdout: { file: '/b/x.dump.tmp-1', mode: 0o600 },
    });
    expect(clientCmd(v1, composeT, 'pg_restore', ['--list'], { connect: false, stdin: { file: '/b/x.dump' } })).toEqual({
      argv: ['docker-compose', '--project-directory', '/srv/app', 'exec', '-T', 'db', 'pg_restore', '--list'],
      stdin: { file: '/b/x.dump' },
    });
    expect(clientCmd(v2, composeT, 'psql', ['--dbname', 'odoo'], { tty: true }).argv).toEqual([
      'docker',
      'compose',
      '--project-directory',
      '/srv/app',
      '-f',
      'compose/compose.yaml',
      'exec',
      'db',
      'psql',
      '--username',
      'odoo',
      '--dbname',
      'odoo',
    ]);
    expect(JSON.stringify(cmd)).not.toContain('s3cret-pw');
    expect(() => clientCmd(undefined, composeT, 'psql', [])).toThrow(/compose project/);
  });

  it('URL mode: the host tool with host, port and user; the password only in PGPASSWORD; never prompts', () => {
    const cmd = clientCmd(undefined, urlT, 'pg_dump', pgDumpArgs({ database: 'shop', format: 'custom' }));
    expect(cmd).toEqual({
      argv: [
        'pg_dump',
        '--host',
        'db.example.com',
        '--port',
        '6543',
        '--username',
        'app',
        '--no-password',
        '--format=custom',
        '--dbname',
        'shop',
      ],
      env: { PGPASSWORD: 'p@ss/word', PGSSLMODE: 'require', PGCONNECT_TIMEOUT: '10' },
    });
    expect(cmd.argv.join(' ')).not.toContain('p@ss');
    expect(clientCmd(undefined, urlT, 'psql', ['--dbname', 'shop'], { prompt: true }).argv).toEqual([
      'psql',
      '--host',
      'db.example.com',
      '--port',
      '6543',
      '--username',
      'app',
      '--dbname',
      'shop',
    ]);
    expect(clientCmd(undefined, urlT, 'pg_restore', ['--list', 'x.dump'], { connect: false })).toEqual({
      argv: ['pg_restore', '--list', 'x.dump'],
    });
  });
});

describe('versions', () => {
  it('reads majors from tool output and server strings', () => {
    expect(parseVersion('pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)'.replace(/^[^)]*\)/, ''))).toEqual({
      major: 15,
      text: '15.20',
    });
    expect(parseVersion('9.6.24')).toEqual({ major: 9.6, text: '9.6' });
    expect(parseVersion('17beta1')).toEqual({ major: 17, text: '17' });
  });

  it('refuses an older pg_dump and a dump from a newer major, naming both versions', () => {
    const server = { major: 15, text: '15.4' };
    expect(() => assertDumpCompatible({ server, pgDump: { major: 15, text: '15.1' } })).not.toThrow();
    expect(() => assertDumpCompatible({ server, pgDump: { major: 16, text: '16.2' } })).not.toThrow();
    expect(() => assertDumpCompatible({ server, dumpedFrom: { major: 14, text: '14.9' } })).not.toThrow();
    expect(() => assertDumpCompatible({ server, pgDump: { major: 13, text: '13.9' } })).toThrow(
      /pg_dump 13\.9 is older than the PostgreSQL 15\.4 server/,
    );
    expect(() => assertDumpCompatible({ server, dumpedFrom: { major: 16, text: '16.1' }, file: 'x.dump' })).toThrow(
      /x\.dump was dumped from PostgreSQL 16\.1, newer than the target server PostgreSQL 15\.4/,
    );
    try {
      assertDumpCompatible({ server, pgDump: { major: 12, text: '12.0' } });
    } catch (e) {
      expect((e as TaskError).exitCode).toBe(ExitCode.prerequisite);
    }
  });
});

describe('database task helpers', () => {
  it('expands ${VAR} and ${VAR:-default} in the configured migrate command', () => {
    const get = (k: string) => (({ POSTGRES_DB: 'odoo' }) as Record<string, string>)[k];
    expect(expandVars('--database=${POSTGRES_DB}', get)).toBe('--database=odoo');
    expect(expandVars('${MISSING:-fallback}/${MISSING}', get)).toBe('fallback/');
  });

  it('names files with a UTC timestamp', () => {
    expect(fileStamp(new Date('2024-05-01T02:03:04.567Z'))).toBe('2024-05-01_02-03-04');
  });
});

describe('client failures', () => {
  const fail = (stderr: string) => new CommandError('$ psql ...', ['psql'], 2, stderr);
  it('a refused connection or a wrong password becomes one line naming the server and what to check (exit 6)', () => {
    const refused = explainPgError(
      fail(
        'psql: error: connection to server at "127.0.0.1", port 1 failed: Connection refused\n' +
          '\tIs the server running on that host and accepting TCP/IP connections?',
      ),
      urlT,
    ) as TaskError;
    expect(refused.message).toBe('cannot connect to PostgreSQL at db.example.com:6543 as app: connection refused');
    expect(refused.exitCode).toBe(ExitCode.prerequisite);
    const pw = explainPgError(
      fail('psql: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "app"'),
      urlT,
    ) as TaskError;
    expect(pw.message).toBe('cannot connect to PostgreSQL at db.example.com:6543 as app: password authentication failed');
    expect(pw.hint).toMatch(/DATABASE_URL/);
    const other = fail('ERROR:  relation "x" does not exist');
    expect(explainPgError(other, urlT)).toBe(other);
  });

  it('recognises a dump by its first bytes, whatever its name', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sniff-'));
    const w = (n: string, b: Buffer | string) => {
      fs.writeFileSync(path.join(dir, n), b);
      return path.join(dir, n);
    };
    expect(sniffDumpFormat(w('a.sql', 'PGDMP\x01\x0e\x00'))).toBe('custom');
    expect(sniffDumpFormat(w('b.dump', zlib.gzipSync('select 1;')))).toBe('plain-gz');
    expect(sniffDumpFormat(w('c', '--\n-- PostgreSQL database dump\n'))).toBe('plain');
    expect(sniffDumpFormat(w('d.dump', Buffer.from([0, 1, 2, 3])))).toBe('unknown');
    fs.rmSync(dir, { recursive: true });
  });
});

describe('lastDataEntry: the block a completeness check reads', () => {
  const list = [
    ';',
    '; Archive created at 2026-11-23 18:39:58 UTC',
    ';     TOC Entries: 27',
    '215; 1259 16391 TABLE public pgbench_accounts postgres',
    '3358; 0 16391 TABLE DATA public pgbench_accounts postgres',
    '3359; 0 16394 TABLE DATA public pgbench_branches postgres',
    '3357; 0 16388 TABLE DATA public pgbench_tellers postgres',
    '3201; 2606 16398 CONSTRAINT public pgbench_tellers pgbench_tellers_pkey postgres',
  ].join('\n');
  it('is the last TABLE DATA entry in table-of-contents order (the order pg_dump writes the blocks)', () => {
    expect(lastDataEntry(list)).toEqual({ schema: 'public', table: 'pgbench_tellers' });
  });
  it('large objects last, or a name with a space, ask for the full read instead', () => {
    expect(lastDataEntry(`${list}\n3400; 0 0 BLOBS - BLOBS postgres`)).toBe('other');
    expect(lastDataEntry('3357; 0 16388 TABLE DATA public my table postgres')).toBe('other');
  });
  it('none when the archive has no data', () => {
    expect(lastDataEntry('215; 1259 16391 TABLE public t postgres')).toBeUndefined();
  });
});
