// PostgreSQL toolkit: where the database is (compose or URL), pure client argv builders, version checks, dump/verify/restore and admin SQL.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { cannotRunReason, compose, type ComposeProject } from './compose.ts';
import { CommandError, ExitCode, TaskError } from '../core/errors.ts';
import type { Cmd } from '../core/runner.ts';
import type { TaskContext } from '../core/define.ts';

export type PgTarget =
  | { mode: 'compose'; service: string; user: string; password?: string; database: string }
  | {
      mode: 'url';
      host: string;
      port: number;
      user: string;
      password?: string;
      database: string /** Without the password. */;
      url: string;
      sslmode?: string /** psql, pg_dump or pg_restore run from these paths instead of PATH's (see hostClientTools). */;
      tools?: Partial<Record<PgTool, string>>;
    };

export type PgTool = 'psql' | 'pg_dump' | 'pg_restore';
export type DumpFormat = 'custom' | 'plain' | 'plain-gz';

/** The part of the task context the toolkit needs. */
export type PgContext = Pick<TaskContext, 'env' | 'runner' | 'probe' | 'compose' | 'log' | 'onCleanup' | 'global' | 'signal'>;

/** Parses DATABASE_URL (postgres:// or postgresql://); the password is kept apart, the url returned has none. */
export function parseDatabaseUrl(raw: string, database?: string): Extract<PgTarget, { mode: 'url' }> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TaskError('DATABASE_URL is not a valid URL', {
      exitCode: ExitCode.invalidEnv,
      hint: 'expected postgres://user:password@host:5432/database',
    });
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new TaskError(`DATABASE_URL must start with postgres:// (got ${u.protocol}//)`, { exitCode: ExitCode.invalidEnv });
  }
  const user = decodeURIComponent(u.username);
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  const db = database ?? decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!user)
    throw new TaskError('DATABASE_URL has no user name', {
      exitCode: ExitCode.invalidEnv,
      hint: 'expected postgres://user:password@host:5432/database',
    });
  if (!db)
    throw new TaskError('DATABASE_URL has no database name', {
      exitCode: ExitCode.invalidEnv,
      hint: 'expected postgres://user:password@host:5432/database',
    });
  const host = u.hostname.replace(/^\[|\]$/g, '') || 'localhost';
  const port = u.port ? Number(u.port) : 5432;
  const clean = new URL(u.toString());
  clean.password = '';
  const sslmode = u.searchParams.get('sslmode') ?? undefined;
  return { mode: 'url', host, port, user, password, database: db, url: clean.toString(), ...(sslmode ? { sslmode } : {}) };
}

/** DATABASE_URL set → URL mode; otherwise compose mode on DB_SERVICE (default db) with POSTGRES_USER/PASSWORD/DB. */
export function pgTarget(ctx: Pick<TaskContext, 'env'>): PgTarget {
  const url = ctx.env.get('DATABASE_URL');
  if (url) {
    const t = parseDatabaseUrl(url);
    const tools = hostClientTools(ctx.env.get('PATH'), ctx.env.get('PG_BINDIR'));
    return Object.keys(tools).length ? { ...t, tools } : t;
  }
  return {
    mode: 'compose',
    service: ctx.env.get('DB_SERVICE') || 'db',
    user: ctx.env.get('POSTGRES_USER') || 'postgres',
    password: ctx.env.get('POSTGRES_PASSWORD') || undefined,
    database: ctx.env.get('POSTGRES_DB') || ctx.env.get('POSTGRES_USER') || 'postgres',
  };
}

const PG_WRAPPER = /\/share\/postgresql-common\/pg_wrapper$/;
const PG_TOOLS: readonly PgTool[] = ['psql', 'pg_dump', 'pg_restore'];
const toolPaths = new Map<string, Partial<Record<PgTool, string>>>();

/**
 * Debian and Ubuntu put a Perl script, pg_wrapper, on PATH for psql, pg_dump and pg_restore; it picks a version on
 * every call (about 25 ms each, paid by every step of a task). A tool that PATH resolves to it runs straight from the
 * newest installed version's bin, the one the wrapper picks for these tools when no cluster is named. A tool found
 * elsewhere first on PATH (another build, a version manager, a test's fixture) is left to PATH. PG_BINDIR: all three
 * from that folder.
 */
export function hostClientTools(pathVar: string | undefined, binDir?: string): Partial<Record<PgTool, string>> {
  if (binDir) return Object.fromEntries(PG_TOOLS.map((tool) => [tool, path.join(binDir, tool)]));
  const key = pathVar ?? '';
  const cached = toolPaths.get(key);
  if (cached) return cached;
  const out: Partial<Record<PgTool, string>> = {};
  for (const tool of PG_TOOLS) {
    const found = key
      .split(':')
      .filter(Boolean)
      .map((d) => path.join(d, tool))
      .find((p) => fs.existsSync(p));
    let real: string | undefined;
    try {
      real = found && fs.realpathSync(found);
    } catch {
      /* dangling link: PATH decides */
    }
    if (!real || !PG_WRAPPER.test(real)) continue;
    const root = path.join(real.replace(PG_WRAPPER, ''), 'lib', 'postgresql');
    let versions: string[] = [];
    try {
      versions = fs.readdirSync(root).filter((v) => /^\d+(\.\d+)?$/.test(v) && fs.existsSync(path.join(root, v, 'bin', tool)));
    } catch {
      /* none */
    }
    const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
    if (newest) out[tool] = path.join(root, newest, 'bin', tool);
  }
  toolPaths.set(key, out);
  return out;
}

/** A human name for the server, for messages (never with a password). */
export function describeTarget(t: PgTarget): string {
  return t.mode === 'url' ? `${t.host}:${t.port} as ${t.user}` : `the ${t.service} service as ${t.user}`;
}

// ---------------------------------------------------------------------------------------------
// Pure argv builders

export function pgDumpArgs(o: { database: string; format: DumpFormat }): string[] {
  if (o.format === 'custom') return ['--format=custom', '--dbname', o.database];
  // Plain dumps carry no owner/privilege statements so they load as whoever imports them.
  const plain = ['--format=plain', '--no-owner', '--no-acl'];
  return o.format === 'plain-gz' ? [...plain, '--compress=6', '--dbname', o.database] : [...plain, '--dbname', o.database];
}

/** pg_restore into `database`: no owner/ACL statements, objects created as `role`, stop at the first error. */
export function pgRestoreArgs(o: { database: string; role: string; jobs?: number; file?: string }): string[] {
  return [
    '--no-owner',
    '--no-acl',
    `--role=${o.role}`,
    '--exit-on-error',
    ...(o.jobs && o.jobs > 1 ? ['--jobs', String(o.jobs)] : []),
    '--dbname',
    o.database,
    ...(o.file ? [o.file] : []),
  ];
}

/** psql, never reading ~/.psqlrc, stopping at the first error. `query` gives unaligned tuples-only quiet output. */
export function psqlArgs(o: {
  database: string;
  command?: string | string[];
  file?: string;
  singleTransaction?: boolean;
  query?: boolean;
}): string[] {
  const cmds = o.command === undefined ? [] : Array.isArray(o.command) ? o.command : [o.command];
  return [
    o.query ? '-XAtq' : '-X',
    '-v',
    'ON_ERROR_STOP=1',
    ...(o.singleTransaction ? ['--single-transaction'] : []),
    '--dbname',
    o.database,
    ...cmds.flatMap((c) => ['-c', c]),
    ...(o.file ? ['--file', o.file] : []),
  ];
}

export interface ClientExtra extends Partial<Omit<Cmd, 'argv'>> {
  /** Allocate a terminal (interactive psql only; never for data). */
  tty?: boolean;
  /** False for tools that only read a file (pg_restore -l / -f): no host, user or password. */
  connect?: boolean;
  /** URL mode: allow a password prompt (interactive psql). Default: never prompt (-w). */
  prompt?: boolean;
}

/**
 * A client command for the target. Compose mode: `compose exec -T <db> <tool> -U <user> …` (the container's
 * local socket is trusted, no password). URL mode: the host tool with `-h -p -U` and PGPASSWORD in env.
 */
export function clientCmd(
  project: ComposeProject | undefined,
  t: PgTarget,
  tool: PgTool,
  args: readonly string[],
  extra: ClientExtra = {},
): Cmd {
  const { tty, connect = true, prompt, ...rest } = extra;
  if (t.mode === 'compose') {
    if (!project) throw new Error('clientCmd: compose mode needs the compose project');
    const toolArgs = connect ? [tool, '--username', t.user, ...args] : [tool, ...args];
    return { ...rest, argv: compose.exec(project, t.service, toolArgs, { tty }) };
  }
  const conn = connect ? ['--host', t.host, '--port', String(t.port), '--username', t.user, ...(prompt ? [] : ['--no-password'])] : [];
  const env: Record<string, string> = { ...(rest.env as Record<string, string> | undefined) };
  if (connect) {
    if (t.password !== undefined) env.PGPASSWORD = t.password;
    if (t.sslmode) env.PGSSLMODE = t.sslmode;
    env.PGCONNECT_TIMEOUT ??= '10';
  }
  return { ...rest, argv: [t.tools?.[tool] ?? tool, ...conn, ...args], ...(Object.keys(env).length ? { env } : {}) };
}

/** Where a file given to a client tool is read: host path (URL mode) or stdin (compose mode, through exec -T). */
function fileInput(t: PgTarget, file: string): { args: string[]; stdin?: Cmd['stdin'] } {
  return t.mode === 'compose' ? { args: [], stdin: { file } } : { args: [file] };
}

export function quoteIdent(s: string): string {
  return '"' + s.replace(/"/g, '""') + '"';
}

export function quoteLiteral(s: string): string {
  return "'" + s.replace(/'/g, "''") + "'";
}

// ---------------------------------------------------------------------------------------------
// Running

async function projectOf(ctx: Pick<PgContext, 'compose'>, t: PgTarget): Promise<ComposeProject | undefined> {
  return t.mode === 'compose' ? ctx.compose() : undefined;
}

const CONNECT_FAILURE = new RegExp(
  [
    /connection to server|could not connect|Connection refused|password authentication failed|no password supplied/,
    /timeout expired|could not translate host name|Is the server running|does not exist\s*$|no pg_hba.conf entry/,
    /role "[^"]*" does not exist/,
  ]
    .map((r) => r.source)
    .join('|'),
  'i',
);

/** Turns a client failure into one line naming what to fix (connection problems get their own exit code). */
export function explainPgError(err: unknown, t: PgTarget): unknown {
  if (!(err instanceof CommandError)) return err;
  const lines = err.stderrTail
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const reason = (lines.find((l) => /FATAL:|error:|ERROR:/.test(l)) ?? lines.at(-1) ?? '').replace(
    /^(psql|pg_dump|pg_restore): error: /,
    '',
  );
  if (/password authentication failed/i.test(reason)) {
    return new TaskError(`cannot connect to PostgreSQL at ${describeTarget(t)}: password authentication failed`, {
      exitCode: ExitCode.prerequisite,
      hint: t.mode === 'url' ? 'check the password in DATABASE_URL' : 'check POSTGRES_PASSWORD',
    });
  }
  if (
    /Connection refused|could not connect|timeout expired|could not translate host name/i.test(reason) ||
    /Is the server running|no password supplied|no pg_hba.conf entry/i.test(reason)
  ) {
    const why = /Connection refused/i.test(reason)
      ? 'connection refused'
      : /timeout/i.test(reason)
        ? 'timed out'
        : /translate host/i.test(reason)
          ? 'unknown host'
          : reason;
    return new TaskError(`cannot connect to PostgreSQL at ${describeTarget(t)}: ${why}`, {
      exitCode: ExitCode.prerequisite,
      hint: t.mode === 'url' ? 'is the server running and DATABASE_URL right?' : `is the ${t.service} service up? (tasks up)`,
    });
  }
  if (CONNECT_FAILURE.test(reason) && /FATAL/.test(reason)) {
    return new TaskError(`cannot connect to PostgreSQL at ${describeTarget(t)}: ${reason.replace(/^.*FATAL:\s*/, '')}`, {
      exitCode: ExitCode.prerequisite,
    });
  }
  return err;
}

async function runPg(ctx: PgContext, t: PgTarget, cmd: Cmd, quiet = false) {
  try {
    return await (quiet ? ctx.probe : ctx.runner).run(cmd);
  } catch (err) {
    throw explainPgError(err, t);
  }
}

/** Output of `psql -XAtq -v ON_ERROR_STOP=1 -c <sql>`, trimmed. Runs in dry-run too only when `probe` is set (read-only). */
export async function psqlQuery(
  ctx: PgContext,
  t: PgTarget,
  sql: string | string[],
  o: { database?: string; probe?: boolean } = {},
): Promise<string> {
  const cmd = clientCmd(await projectOf(ctx, t), t, 'psql', psqlArgs({ database: o.database ?? t.database, command: sql, query: true }), {
    stdout: 'capture',
    stderr: 'capture',
  });
  const r = await runPg(ctx, t, cmd, o.probe);
  return r.stdout.trim();
}

export interface PgVersion {
  major: number;
  text: string;
}

export function parseVersion(text: string): PgVersion {
  const m = /(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) throw new TaskError(`cannot read a PostgreSQL version from "${text.trim()}"`);
  const first = Number(m[1]);
  const major = first < 10 && m[2] !== undefined ? Number(`${first}.${m[2]}`) : first;
  return { major, text: m[2] !== undefined ? `${m[1]}.${m[2]}` : m[1]! };
}

/** The server's version (read-only, runs in dry-run too). Connecting to the maintenance database checks reachability. */
export async function serverVersion(ctx: PgContext, t: PgTarget, database = 'postgres'): Promise<PgVersion> {
  const out = await psqlQuery(ctx, t, 'SHOW server_version', { database, probe: true });
  return parseVersion(out);
}

/** `<tool> --version` where it will run (host in URL mode, the db container in compose mode). */
export async function clientVersion(ctx: PgContext, t: PgTarget, tool: PgTool): Promise<PgVersion> {
  const cmd = clientCmd(await projectOf(ctx, t), t, tool, ['--version'], { connect: false, stdout: 'capture', stderr: 'capture' });
  let out: string;
  try {
    out = (await ctx.probe.run(cmd)).stdout;
  } catch (err) {
    throw explainPgError(err, t);
  }
  return parseVersion(out.replace(/^[^)]*\)/, ''));
}

/**
 * Refuses a pg_dump older (major) than the server, and a dump made from a newer major than the target server,
 * before anything changes. Exit code 6 (prerequisite).
 */
export function assertDumpCompatible(o: { server: PgVersion; pgDump?: PgVersion; dumpedFrom?: PgVersion; file?: string }): void {
  if (o.pgDump && o.pgDump.major < o.server.major) {
    throw new TaskError(`pg_dump ${o.pgDump.text} is older than the PostgreSQL ${o.server.text} server: it cannot dump it`, {
      exitCode: ExitCode.prerequisite,
      hint:
        `use pg_dump ${o.server.major} or newer (e.g. postgresql-client-${o.server.major}), ` +
        'or unset DATABASE_URL to dump inside the database container',
    });
  }
  if (o.dumpedFrom && o.dumpedFrom.major > o.server.major) {
    throw new TaskError(
      `${o.file ? `${o.file} was` : 'the dump was'} dumped from PostgreSQL ${o.dumpedFrom.text}, ` +
        `newer than the target server PostgreSQL ${o.server.text}: refusing to load it`,
      {
        exitCode: ExitCode.prerequisite,
        hint: `restore into PostgreSQL ${o.dumpedFrom.major} or newer (upgrade the database image first)`,
      },
    );
  }
}

export interface DumpHeader {
  format: DumpFormat;
  dumpedFromMajor?: number;
  dumpedFrom?: string;
  dumpedByMajor?: number;
  dumpedBy?: string;
  entries?: number;
  /**
   * The archive's last data block (pg_dump writes them in table-of-contents order): a table's, or 'other' (large objects,
   * or a name the listing leaves ambiguous).
   */
  lastData?: { schema: string; table: string } | 'other';
}

/** The last entry of a `pg_restore --list` that carries a data block. */
export function lastDataEntry(list: string): DumpHeader['lastData'] {
  let last: DumpHeader['lastData'];
  for (const line of list.split('\n')) {
    const m = /^\d+; \d+ \d+ (TABLE DATA|BLOBS|BLOB DATA|LARGE OBJECTS?) (.*)$/.exec(line.trim());
    if (!m) continue;
    const rest = m[2]!.split(' ');
    // "<schema> <table> <owner>": a name with a space would be ambiguous here.
    last = m[1] === 'TABLE DATA' && rest.length === 3 ? { schema: rest[0]!, table: rest[1]! } : 'other';
  }
  return last;
}

/** What kind of file this is, from its first bytes: custom archive (PGDMP), gzip, or plain SQL text. */
export function sniffDumpFormat(file: string): DumpFormat | 'unknown' {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(8);
    const n = fs.readSync(fd, buf, 0, 8, 0);
    if (n >= 5 && buf.subarray(0, 5).toString('latin1') === 'PGDMP') return 'custom';
    if (n >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'plain-gz';
    if (n > 0 && !buf.subarray(0, n).includes(0)) return 'plain';
    return 'unknown';
  } finally {
    fs.closeSync(fd);
  }
}

/** The first bytes of a plain or gzipped SQL file, decompressed (streamed: reads only the head). */
async function readTextHead(file: string, gz: boolean, limit = 16384): Promise<string> {
  const src = fs.createReadStream(file, gz ? {} : { end: limit - 1 });
  const stream = gz ? src.pipe(zlib.createGunzip()) : src;
  let text = '';
  try {
    for await (const chunk of stream) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length >= limit) break;
    }
  } catch {
    /* a broken gzip stream: the header is whatever was read */
  } finally {
    src.destroy();
  }
  return text;
}

function versionFields(from?: string, by?: string): Pick<DumpHeader, 'dumpedFrom' | 'dumpedFromMajor' | 'dumpedBy' | 'dumpedByMajor'> {
  const out: ReturnType<typeof versionFields> = {};
  if (from) {
    const v = parseVersion(from);
    out.dumpedFrom = v.text;
    out.dumpedFromMajor = v.major;
  }
  if (by) {
    const v = parseVersion(by);
    out.dumpedBy = v.text;
    out.dumpedByMajor = v.major;
  }
  return out;
}

/** Versions and entry count from `pg_restore -l` (custom) or the comment header (plain / gz). */
export async function dumpHeader(ctx: PgContext, t: PgTarget, file: string): Promise<DumpHeader> {
  const format = sniffDumpFormat(file);
  if (format === 'unknown')
    throw new TaskError(`${file} is not a PostgreSQL dump (neither a custom-format archive, gzip nor SQL text)`, {
      exitCode: ExitCode.usage,
    });
  if (format !== 'custom') {
    const head = await readTextHead(file, format === 'plain-gz');
    const from = /^-- Dumped from database version (\S+)/m.exec(head)?.[1];
    const by = /^-- Dumped by pg_dump version (\S+)/m.exec(head)?.[1];
    return { format, ...versionFields(from, by) };
  }
  const input = fileInput(t, file);
  const cmd = clientCmd(await projectOf(ctx, t), t, 'pg_restore', ['--list', ...input.args], {
    connect: false,
    stdin: input.stdin,
    stdout: 'capture',
    stderr: 'capture',
  });
  let out: string;
  try {
    out = (await ctx.probe.run(cmd)).stdout;
  } catch (err) {
    // pg_restore's own verdict; not a stopped stack or engine, where it never ran.
    if (err instanceof CommandError && !cannotRunReason(err)) throw corruptDump(file, err);
    throw err;
  }
  const from = /Dumped from database version:\s*(\S+)/.exec(out)?.[1];
  const by = /Dumped by pg_dump version:\s*(\S+)/.exec(out)?.[1];
  const entries = /TOC Entries:\s*(\d+)/.exec(out)?.[1];
  const lastData = lastDataEntry(out);
  return { format, ...versionFields(from, by), ...(entries ? { entries: Number(entries) } : {}), ...(lastData ? { lastData } : {}) };
}

function corruptDump(file: string, err: CommandError): TaskError {
  const line =
    err.stderrTail
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .at(-1)
      ?.replace(/^pg_restore: error: /, '') ?? '';
  return new TaskError(`${file} is corrupt or truncated${line ? `: ${line}` : ''}`, {
    exitCode: ExitCode.failure,
    hint: 'use another dump; nothing was changed',
  });
}

/** A full read of a custom-format dump (`pg_restore -f /dev/null`): catches truncation that `--list` misses. */
export async function verifyDump(ctx: PgContext, t: PgTarget, file: string, o: { growingUntil?: Promise<unknown> } = {}): Promise<void> {
  // `growingUntil`: the dump is read as pg_dump writes it (through stdin), finishing once that settles.
  const input = o.growingUntil ? { args: [], stdin: { file, until: o.growingUntil } } : fileInput(t, file);
  const cmd = clientCmd(await projectOf(ctx, t), t, 'pg_restore', ['--file', '/dev/null', ...input.args], {
    connect: false,
    stdin: input.stdin,
    stderr: 'capture',
  });
  try {
    await ctx.runner.run(cmd);
  } catch (err) {
    if (err instanceof CommandError) throw corruptDump(file, err);
    throw err;
  }
}

/**
 * Shows a custom archive is complete without reading all of it: pg_dump writes the data blocks in table-of-contents
 * order, so the file is whole when its last block reads to its end marker (`pg_restore --data-only -n -t … -f
 * /dev/null`: a seekable archive jumps straight to it, one written to a pipe is skipped through). Large objects last,
 * or a name the listing leaves ambiguous: the full read instead.
 */
export async function checkDumpComplete(ctx: PgContext, t: PgTarget, file: string, header: DumpHeader): Promise<void> {
  const last = header.lastData;
  if (!last) return;
  if (last === 'other') return verifyDump(ctx, t, file);
  const input = fileInput(t, file);
  const cmd = clientCmd(
    await projectOf(ctx, t),
    t,
    'pg_restore',
    ['--data-only', '--schema', last.schema, '--table', last.table, '--file', '/dev/null', ...input.args],
    { connect: false, stdin: input.stdin, stderr: 'capture' },
  );
  try {
    await ctx.runner.run(cmd);
  } catch (err) {
    if (err instanceof CommandError) throw corruptDump(file, err);
    throw err;
  }
}

const PLAIN_END = '-- PostgreSQL database dump complete';

/** A plain dump is complete when pg_dump's closing comment is at its end (gz: the whole stream must decompress). */
async function verifyPlain(file: string, gz: boolean): Promise<void> {
  let tail = '';
  try {
    const stream = gz
      ? fs.createReadStream(file).pipe(zlib.createGunzip())
      : fs.createReadStream(file, { start: Math.max(0, fs.statSync(file).size - 4096) });
    for await (const chunk of stream) tail = (tail + (chunk as Buffer).toString('utf8')).slice(-4096);
  } catch (err) {
    throw new TaskError(`${file} is corrupt or truncated: ${(err as Error).message}`);
  }
  if (!tail.includes(PLAIN_END)) throw new TaskError(`${file} is truncated: pg_dump's closing line is missing`);
}

/** Reports a growing byte count every few seconds while `work` runs (files only grow or are read forward). */
async function withProgress<T>(
  ctx: PgContext,
  label: string,
  bytes: () => number | undefined,
  total: number | undefined,
  work: Promise<T>,
): Promise<T> {
  const started = Date.now();
  const timer = setInterval(() => {
    const b = bytes();
    if (b !== undefined) ctx.log.emit({ kind: 'progress', label, bytes: b, ...(total ? { total } : {}), elapsedMs: Date.now() - started });
  }, 2000);
  timer.unref();
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/** How far a child has read a file we opened for its stdin: our shared descriptor's offset (Linux /proc). */
function readOffset(file: string): number | undefined {
  try {
    const abs = fs.realpathSync(file);
    for (const fd of fs.readdirSync('/proc/self/fd')) {
      let target: string;
      try {
        target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        continue;
      }
      if (target !== abs) continue;
      const pos = /^pos:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      if (pos) return Number(pos);
    }
  } catch {
    /* no /proc: no progress */
  }
  return undefined;
}

export function formatFromName(file: string): DumpFormat {
  if (/\.sql\.gz$/i.test(file)) return 'plain-gz';
  if (/\.sql$/i.test(file)) return 'plain';
  return 'custom';
}

/**
 * pg_dump to `<file>.tmp-<pid>` (0600) through a descriptor (never buffered), removed on failure or interruption,
 * renamed only when complete and checked: a custom archive must carry the PGDMP
 * header, a readable table of contents and a readable last data block (so it is not cut short: checkDumpComplete);
 * `verify` reads every data block instead (`pg_restore -f /dev/null`). A plain dump must end with pg_dump's closing line.
 * `beforePublish` runs (and may refuse) just before the rename.
 */
export async function dumpDatabase(
  ctx: PgContext,
  t: PgTarget,
  o: { database?: string; file: string; format: DumpFormat; verify?: boolean; beforePublish?: () => Promise<void> },
): Promise<{ bytes: number; ms: number }> {
  const database = o.database ?? t.database;
  const tmp = `${o.file}.tmp-${process.pid}`;
  if (!ctx.global.dryRun) fs.mkdirSync(path.dirname(path.resolve(o.file)), { recursive: true });
  ctx.onCleanup(() => fs.rmSync(tmp, { force: true }));
  const cmd = clientCmd(await projectOf(ctx, t), t, 'pg_dump', pgDumpArgs({ database, format: o.format }), {
    stdout: { file: tmp, mode: 0o600 },
    stderr: 'capture',
  });
  const started = Date.now();
  const size = () => {
    try {
      return fs.statSync(tmp).size;
    } catch {
      return undefined;
    }
  };
  try {
    await withProgress(ctx, `pg_dump ${database}`, size, undefined, runPg(ctx, t, cmd));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  if (ctx.global.dryRun) return { bytes: 0, ms: 0 };
  try {
    const bytes = fs.statSync(tmp).size;
    if (bytes === 0)
      throw new TaskError(`pg_dump exited 0 but wrote nothing for ${database}`, { hint: 'nothing was written under the final name' });
    if (o.format === 'custom') {
      if (sniffDumpFormat(tmp) !== 'custom')
        throw new TaskError(`pg_dump exited 0 but its output is not a custom-format archive (no PGDMP header)`);
      const header = await dumpHeader(ctx, t, tmp);
      if (o.verify) await verifyDump(ctx, t, tmp);
      else await checkDumpComplete(ctx, t, tmp, header);
    } else {
      await verifyPlain(tmp, o.format === 'plain-gz');
    }
    await o.beforePublish?.();
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, o.file);
    return { bytes, ms: Date.now() - started };
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    if (err instanceof TaskError && err.message.startsWith(tmp))
      throw new TaskError(err.message.replace(tmp, `the dump of ${database}`), {
        exitCode: err.exitCode,
        hint: 'nothing was written under the final name',
      });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Administration (run from the maintenance database)

const MAINTENANCE_DB = 'postgres';

export async function databaseExists(ctx: PgContext, t: PgTarget, name: string): Promise<boolean> {
  return (
    (await psqlQuery(ctx, t, `SELECT 1 FROM pg_database WHERE datname = ${quoteLiteral(name)}`, {
      database: MAINTENANCE_DB,
      probe: true,
    })) === '1'
  );
}

/** The size of database `name` on disk (pg_database_size), in bytes. */
export async function databaseSize(ctx: PgContext, t: PgTarget, name: string): Promise<number> {
  return Number(await psqlQuery(ctx, t, `SELECT pg_database_size(${quoteLiteral(name)})`, { database: MAINTENANCE_DB, probe: true }));
}

/** `df -Pk DIR` → the bytes available (its fourth column of the last line), or undefined. */
export function parseDfAvailable(out: string): number | undefined {
  const last = out.trim().split('\n').pop() ?? '';
  const kb = Number(last.trim().split(/\s+/)[3]);
  return Number.isFinite(kb) && last ? kb * 1024 : undefined;
}

/**
 * Free space where the server keeps its databases, when it can be read: the data directory is shown to a superuser
 * (or pg_read_all_settings) only, then measured with df in the database service (compose mode) or on this machine (a
 * server on localhost whose folder is here). Undefined when it cannot be known (a managed database, a plain role).
 */
export async function serverFreeBytes(ctx: PgContext, t: PgTarget): Promise<{ bytes: number; where: string } | undefined> {
  const sql = "SELECT setting FROM pg_settings WHERE name = 'data_directory'";
  const dir = await psqlQuery(ctx, t, sql, { database: MAINTENANCE_DB, probe: true }).catch(() => '');
  if (!dir.startsWith('/')) return undefined;
  if (t.mode === 'compose') {
    const argv = compose.exec(await ctx.compose(), t.service, ['df', '-Pk', dir]);
    const out = await ctx.probe.run({ argv, stdout: 'capture', stderr: 'capture' }).then(
      (r) => r.stdout,
      () => '',
    );
    const bytes = parseDfAvailable(out);
    return bytes === undefined ? undefined : { bytes, where: `${dir} in the ${t.service} service` };
  }
  const local = ['localhost', '127.0.0.1', '::1'].includes(t.host) || t.host.startsWith('/');
  if (!local || !fs.existsSync(dir)) return undefined;
  const st = fs.statfsSync(dir);
  return { bytes: Number(st.bavail) * Number(st.bsize), where: dir };
}

/**
 * Ends the other client sessions on `name` that this role may end; returns how many. Autovacuum workers (busy right
 * after a large restore) are left to PostgreSQL, which stops them itself for DROP and RENAME; a superuser's session
 * that a plain role cannot end is left too, and the DROP or RENAME that follows reports the database as in use.
 */
export async function terminateSessions(ctx: PgContext, t: PgTarget, name: string): Promise<number> {
  const out = await psqlQuery(ctx, t, terminateSessionsSql(name), { database: MAINTENANCE_DB });
  return Number(out) || 0;
}

/**
 * `waitMs` (PostgreSQL 14+): wait up to that long for each session to be gone, so a RENAME or DROP sent right
 * after does not find it still exiting.
 */
export function terminateSessionsSql(name: string, waitMs?: number): string {
  return (
    `SELECT count(pg_terminate_backend(a.pid${waitMs ? `, ${waitMs}` : ''})) FROM pg_stat_activity a` +
    ` WHERE a.datname = ${quoteLiteral(name)} AND a.pid <> pg_backend_pid()` +
    ` AND a.backend_type = 'client backend'` +
    ` AND (NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = a.usesysid AND r.rolsuper)` +
    ` OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))`
  );
}

/** An open client session on a database, as pg_stat_activity shows it to any role. */
export interface Session {
  pid: number;
  role: string;
  application: string;
}

/** The client sessions on `name` of roles other than the one connected (not our own), as tab-separated lines. */
export function otherRoleSessionsSql(name: string): string {
  return (
    `SELECT a.pid || E'\\t' || coalesce(a.usename, '?') || E'\\t' || coalesce(a.application_name, '') FROM pg_stat_activity a` +
    ` WHERE a.datname = ${quoteLiteral(name)} AND a.pid <> pg_backend_pid() AND a.usename IS NOT NULL AND a.usename <> current_user` +
    // Another role's row hides its backend_type (NULL) from a plain role; background workers have no usename.
    ` AND coalesce(a.backend_type, 'client backend') = 'client backend' ORDER BY a.pid`
  );
}

/** Sessions on `name` of other roles: ones the app's role cannot (or should not) end. */
export async function otherRoleSessions(ctx: PgContext, t: PgTarget, name: string): Promise<Session[]> {
  const out = await psqlQuery(ctx, t, otherRoleSessionsSql(name), { database: MAINTENANCE_DB, probe: true });
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [pid, role, application] = line.split('\t');
      return { pid: Number(pid), role: role ?? '?', application: application ?? '' };
    });
}

/** Both renames in one transaction: `incoming` becomes `live` and `live` becomes `aside`, or nothing changes. */
export function swapDatabasesSql(o: { live: string; incoming: string; aside: string }): string {
  return (
    `BEGIN; ALTER DATABASE ${quoteIdent(o.live)} RENAME TO ${quoteIdent(o.aside)}; ` +
    `ALTER DATABASE ${quoteIdent(o.incoming)} RENAME TO ${quoteIdent(o.live)}; COMMIT;`
  );
}

/**
 * Ends the sessions on `live` and swaps `incoming` in (swapDatabasesSql) in one psql call; tried again, up to three
 * times, when a client reconnects in between. On failure both databases keep their names.
 */
export async function swapDatabases(
  ctx: PgContext,
  t: PgTarget,
  o: { live: string; incoming: string; aside: string; serverMajor?: number },
): Promise<void> {
  const wait = (o.serverMajor ?? 0) >= 14 ? 5000 : undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      await psqlQuery(ctx, t, [terminateSessionsSql(o.live, wait), swapDatabasesSql(o)], { database: MAINTENANCE_DB });
      return;
    } catch (err) {
      const busy = err instanceof CommandError && /being accessed by other users/i.test(err.stderrTail);
      if (!busy || attempt >= 3) throw inUse(err, o.live);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}

/** DROP DATABASE IF EXISTS, `WITH (FORCE)` on PostgreSQL 13+ when asked (ends remaining sessions). */
function dropDatabaseSql(name: string, o: { force?: boolean; serverMajor?: number }): string {
  return `DROP DATABASE IF EXISTS ${quoteIdent(name)}${o.force && (o.serverMajor ?? 13) >= 13 ? ' WITH (FORCE)' : ''}`;
}

/** DROP (if it exists, forced) and CREATE `name` owned by `owner`, in one psql call: a fresh, empty database. */
export async function recreateDatabase(
  ctx: PgContext,
  t: PgTarget,
  name: string,
  owner: string,
  o: { serverMajor?: number } = {},
): Promise<void> {
  try {
    await psqlQuery(
      ctx,
      t,
      [
        dropDatabaseSql(name, { force: true, serverMajor: o.serverMajor }),
        `CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(owner)}`,
      ],
      { database: MAINTENANCE_DB },
    );
  } catch (err) {
    throw inUse(err, name);
  }
}

export async function createDatabase(ctx: PgContext, t: PgTarget, name: string, owner: string): Promise<void> {
  await psqlQuery(ctx, t, `CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(owner)}`, { database: MAINTENANCE_DB });
}

export async function dropDatabase(
  ctx: PgContext,
  t: PgTarget,
  name: string,
  o: { force?: boolean; serverMajor?: number } = {},
): Promise<void> {
  try {
    await psqlQuery(ctx, t, dropDatabaseSql(name, o), { database: MAINTENANCE_DB });
  } catch (err) {
    throw inUse(err, name);
  }
}

export async function renameDatabase(ctx: PgContext, t: PgTarget, from: string, to: string): Promise<void> {
  try {
    await psqlQuery(ctx, t, `ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`, { database: MAINTENANCE_DB });
  } catch (err) {
    throw inUse(err, from);
  }
}

function inUse(err: unknown, name: string): unknown {
  if (
    err instanceof CommandError &&
    /being accessed by other users|must be a (superuser|member)|permission denied to terminate/i.test(err.stderrTail)
  ) {
    const detail = /There (?:is|are) \d+ other sessions? using the database\./.exec(err.stderrTail)?.[0] ?? '';
    return new TaskError(
      `database ${name} is in use by sessions that cannot be ended${detail ? ` (${detail.replace(/\.$/, '')})` : ''}; nothing was changed`,
      {
        exitCode: ExitCode.refused,
        hint: 'close the other connections (stop the app: tasks stop) and retry',
      },
    );
  }
  return err;
}

// ---------------------------------------------------------------------------------------------
// Restore

/**
 * Loads a dump into an existing (empty) database. Custom format → pg_restore --no-owner --no-acl --role=<user>
 * --exit-on-error [-j N]; plain .sql / .sql.gz → psql with ON_ERROR_STOP in one transaction. Objects end up owned
 * by the app user.
 */
export async function restoreDump(
  ctx: PgContext,
  t: PgTarget,
  o: { file: string; database: string; jobs?: number; format?: DumpFormat },
): Promise<void> {
  const format = o.format ?? sniffDumpFormat(o.file);
  const project = await projectOf(ctx, t);
  // A dry run has not unpacked the dump: the same commands are printed, without a size.
  const total = fs.statSync(o.file, { throwIfNoEntry: false })?.size ?? 0;
  const label = `restoring ${path.basename(o.file)}`;
  if (format === 'custom') {
    const jobs = o.jobs && o.jobs > 1 ? o.jobs : undefined;
    if (!jobs) {
      // One job reads stdin: the same for both modes, and progress can follow the shared descriptor.
      const cmd = clientCmd(project, t, 'pg_restore', pgRestoreArgs({ database: o.database, role: t.user }), {
        stdin: { file: o.file },
        stderr: 'capture',
      });
      await withProgress(ctx, label, () => readOffset(o.file), total, runRestore(ctx, t, cmd, o.file));
      return;
    }
    if (t.mode === 'url') {
      await runRestore(
        ctx,
        t,
        clientCmd(project, t, 'pg_restore', pgRestoreArgs({ database: o.database, role: t.user, jobs, file: o.file }), {
          stderr: 'capture',
        }),
        o.file,
      );
      return;
    }
    // Parallel restore needs a seekable file: copy it into the database container first.
    const inside = `/tmp/compose-tasks-restore-${process.pid}.dump`;
    const rmCmd: Cmd = { argv: compose.exec(project!, t.service, ['rm', '-f', inside]) };
    ctx.onCleanup(async () => {
      await ctx.runner.run({ ...rmCmd, okCodes: [0, 1] }).catch(() => undefined);
    });
    await withProgress(
      ctx,
      `copying ${path.basename(o.file)} into ${t.service}`,
      () => readOffset(o.file),
      total,
      ctx.runner.run({ argv: compose.exec(project!, t.service, ['sh', '-c', 'cat > "$1"', 'sh', inside]), stdin: { file: o.file } }),
    );
    await runRestore(
      ctx,
      t,
      clientCmd(project, t, 'pg_restore', pgRestoreArgs({ database: o.database, role: t.user, jobs, file: inside }), { stderr: 'capture' }),
      o.file,
    );
    await ctx.runner.run(rmCmd);
    return;
  }
  const psql = clientCmd(project, t, 'psql', psqlArgs({ database: o.database, singleTransaction: true, file: '-' }), {
    stdout: 'ignore',
    stderr: 'capture',
  });
  if (format === 'plain') {
    await withProgress(ctx, label, () => readOffset(o.file), total, runRestore(ctx, t, { ...psql, stdin: { file: o.file } }, o.file));
    return;
  }
  // gzip: decompress on the host and pipe into the client; pipefail keeps a broken gzip from looking like success.
  // The file is our stdin descriptor, so progress follows how far gzip has read it.
  const cmd: Cmd = { ...psql, argv: ['bash', '-c', GUNZIP_PIPE, 'bash', ...psql.argv], stdin: { file: o.file } };
  await withProgress(ctx, label, () => readOffset(o.file), total, runRestore(ctx, t, cmd, o.file));
}

/** `bash -c GUNZIP_PIPE bash <client argv...>`: stdin decompressed into the client; pipefail keeps gzip's failure. */
export const GUNZIP_PIPE = 'set -o pipefail; gzip -dc | "$@"';

async function runRestore(ctx: PgContext, t: PgTarget, cmd: Cmd, file: string): Promise<void> {
  try {
    await ctx.runner.run(cmd);
  } catch (err) {
    const e = explainPgError(err, t);
    if (e instanceof CommandError) {
      const lines = e.stderrTail
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      const first = lines.find((l) => /error:|ERROR:|gzip:|unexpected end|invalid/i.test(l)) ?? lines.at(-1) ?? '';
      if (/end of file|unexpected end|invalid compressed data|crc error|length error/i.test(first)) {
        throw new TaskError(`${file} is truncated or corrupt: ${first.replace(/^(pg_restore|psql|gzip): (error: )?/, '')}`, {
          exitCode: e.exitCode,
          hint: e.hint,
        });
      }
      throw new TaskError(
        `restoring ${file} failed: ${first
          .replace(/^(pg_restore|psql): error: /, '')
          .replace(/^psql:[^:]*:(\d+): ERROR:\s*/, 'line $1: ')
          .replace(/^ERROR:\s*/, '')}`,
        { exitCode: e.exitCode, hint: e.hint },
      );
    }
    throw e;
  }
}
