// The backup archive on disk: write it streamed (tar + gzip, no pointless recompression), read, list, verify and safely extract it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import tar from 'tar-stream';
import { ExitCode, TaskError } from '../core/errors.ts';
import { LEGACY_MEMBERS, MANIFEST_FORMAT, parseBackupName, type Manifest, type ManifestPart } from './manifest.ts';

export const MANIFEST_MEMBER = 'manifest.json';
const BLOCK = 512;
const CHUNK = 1 << 20;

/** A manifest read from an archive; `legacy` when it was synthesised from an old backup.sh archive (no checksums). */
export type ArchiveManifest = Manifest & { legacy?: boolean };

export interface Member {
  name: string;
  size: number;
  /** tar type flag: '0' file, '5' directory, '1'/'2' links, … */
  type: string;
  linkname?: string;
}

// ---------------------------------------------------------------------------------------------
// Hashing

/** Size and sha256 of a file, streamed in 1 MB chunks. */
export async function hashFile(file: string, signal?: AbortSignal): Promise<{ size: number; sha256: string }> {
  const h = crypto.createHash('sha256');
  let size = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK, signal })) {
    h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: h.digest('hex') };
}

const MD5_WORKER = `const { parentPort, workerData: w } = require('node:worker_threads');
const fs = require('node:fs'), h = require('node:crypto').createHash('md5'), b = Buffer.allocUnsafe(1 << 20), fd = fs.openSync(w.file, 'r');
try { for (let n; (n = fs.readSync(fd, b, 0, b.length, null)) > 0;) h.update(b.subarray(0, n)); } finally { fs.closeSync(fd); }
parentPort.postMessage(h.digest('hex'));`;

/**
 * A file's MD5 computed on another thread, so it runs beside work that keeps this one busy (the archive check).
 * The upload compares it with the object's ETag. Ends at once when the signal aborts.
 */
export function md5InWorker(file: string, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
    const w = new Worker(MD5_WORKER, { eval: true, workerData: { file } });
    const onAbort = () => {
      void w.terminate();
      reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    w.once('message', (hex: string) => resolve(hex));
    w.once('error', reject);
    w.once('exit', (code) => {
      signal?.removeEventListener('abort', onAbort);
      if (code !== 0) reject(new Error(`MD5 of ${file}: worker exited ${code}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// tar headers (ustar; sizes past 8 GiB in GNU base-256)

function writeOctal(b: Buffer, off: number, len: number, v: number): void {
  b.write(`${v.toString(8).padStart(len - 1, '0')}\0`, off, len, 'ascii');
}

export function tarHeader(name: string, size: number, mtime: number, mode = 0o600): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`member name too long: ${name}`);
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, 'utf8');
  writeOctal(b, 100, 8, mode);
  writeOctal(b, 108, 8, 0);
  writeOctal(b, 116, 8, 0);
  if (size < 8 ** 11) writeOctal(b, 124, 12, size);
  else {
    b[124] = 0x80;
    let v = BigInt(size);
    for (let i = 135; i > 124; i--) {
      b[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }
  writeOctal(b, 136, 12, Math.floor(mtime / 1000));
  b.fill(' ', 148, 156);
  b.write('0', 156, 'ascii');
  b.write('ustar\0', 257, 'ascii');
  b.write('00', 263, 'ascii');
  b.write('root', 265, 'ascii');
  b.write('root', 297, 'ascii');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return b;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** What a visitor does with one member's bytes. */
export interface MemberSink {
  data(chunk: Buffer): void | Promise<void>;
  end(): void | Promise<void>;
}
/** Return a sink to receive the member, null to skip it, or 'stop' to end the walk. */
export type Visitor = (m: Member) => MemberSink | null | 'stop' | Promise<MemberSink | null | 'stop'>;

export function corrupt(archive: string, why: string): TaskError {
  return new TaskError(`${path.basename(archive)} is corrupt or truncated: ${why}`, {
    exitCode: ExitCode.refused,
    hint: 'nothing was changed; use another backup',
  });
}

/** tar-stream's type names back to the tar type flag a Member carries ('?' for a flag it does not name). */
const TYPE_FLAG: Record<string, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
  'contiguous-file': '7',
};

function toMember(h: tar.Header): Member {
  // The type is null at run time for a flag tar-stream does not name (its typings leave that out).
  const m: Member = { name: h.name, size: h.size, type: TYPE_FLAG[(h.type as string | null) ?? ''] ?? '?' };
  if (h.linkname) m.linkname = h.linkname;
  return m;
}

/** tar-stream's (and zlib's) errors as the one-line reason `corrupt` gives. */
function corruptReason(err: Error): string {
  const msg = err.message;
  if (msg.startsWith('Invalid tar header. Maybe')) return 'a tar header has a bad checksum';
  if (msg === 'Unexpected end of data') return 'it ends in the middle of a member';
  if (msg === 'Header exceeds max size') return 'a tar extended header is larger than 4 MB';
  if (msg === 'Invalid header') return 'a tar header has an invalid size';
  return msg.split('\n')[0]!;
}

/**
 * Streams an archive (.tar.gz or .tar) through a visitor, member by member, never holding a member in memory:
 * tar-stream parses it, and each chunk waits for the sink (a slow sink slows the reading, back-pressure through
 * the parser, gunzip and the file).
 */
export async function walkArchive(
  archive: string,
  visit: Visitor,
  o: { signal?: AbortSignal; onBytes?: (compressedBytes: number) => void } = {},
): Promise<void> {
  const src = fs.createReadStream(archive, { highWaterMark: CHUNK, signal: o.signal });
  // Headers without the ustar magic (old v7 tar) are read, as they were before.
  const extract = tar.extract({ allowUnknownFormat: true } as Parameters<typeof tar.extract>[0]);
  let stream: NodeJS.ReadableStream = src;
  let gz: zlib.Gunzip | undefined;
  if (/\.t?gz(\.tmp)?$|\.gz\.|tgz/.test(archive) || isGzip(archive)) {
    gz = zlib.createGunzip({ chunkSize: CHUNK });
    if (o.onBytes) {
      let n = 0;
      src.on('data', (c) => {
        n += (c as Buffer).length;
        o.onBytes!(n);
      });
    }
    stream = src.pipe(gz);
    gz.on('error', (e) => extract.destroy(e));
  }
  src.on('error', (e) => extract.destroy(e));
  stream.pipe(extract);
  try {
    for await (const entry of extract) {
      const sink = await visit(toMember(entry.header));
      if (sink === 'stop') break;
      for await (const chunk of entry) if (sink) await sink.data(chunk as Buffer);
      if (sink) await sink.end();
    }
  } catch (err) {
    if (err instanceof TaskError) throw err;
    if ((err as Error).name === 'AbortError') throw err;
    throw corrupt(archive, corruptReason(err as Error));
  } finally {
    extract.destroy();
    gz?.destroy();
    src.destroy();
  }
}

function isGzip(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(2);
    return fs.readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    fs.closeSync(fd);
  }
}

/** Every member (name, size, type) in order. */
export async function listMembers(archive: string): Promise<Member[]> {
  const out: Member[] = [];
  await walkArchive(archive, (m) => {
    out.push(m);
    return null;
  });
  return out;
}

/** `./x` → `x`; the single top folder of a legacy archive is dropped by the caller. */
const clean = (name: string) => name.replace(/^(\.\/)+/, '');

/** Why a member may not be extracted ('../', absolute path, link, device…), or undefined when it is a plain file. */
export function unsafeMember(m: Member): string | undefined {
  const n = m.name;
  if (n.startsWith('/')) return `${n}: absolute path`;
  if (n.split('/').includes('..')) return `${n}: path leaves the folder`;
  if (m.type === '1' || m.type === '2') return `${n}: link to ${m.linkname ?? '?'}`;
  if (m.type === '5') return undefined;
  if (m.type !== '0' && m.type !== '7') return `${n}: not a regular file (type ${m.type})`;
  return undefined;
}

function legacyLayout(members: Member[]): Map<string, Member> | undefined {
  const files = members.filter((m) => m.type !== '5');
  const names = files.map((m) => clean(m.name));
  const tops = new Set(names.map((n) => (n.includes('/') ? n.split('/')[0] : '')));
  const strip = tops.size === 1 && !tops.has('') ? `${[...tops][0]}/` : '';
  const map = new Map<string, Member>();
  for (const m of files) {
    const n = clean(m.name).slice(strip.length);
    if (!(LEGACY_MEMBERS as readonly string[]).includes(n)) return undefined;
    map.set(n, m);
  }
  return map.has('database.dump') ? map : undefined;
}

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Za-z_ ]+?)\s*[:=]\s*(.*)$/.exec(line);
    if (m) out[m[1]!.toLowerCase().replace(/\s+/g, '_')] = m[2]!.trim();
  }
  return out;
}

/** A synthetic manifest for an old backup.sh archive: sizes from the tar headers, no checksums. */
async function legacyManifest(archive: string, members: Map<string, Member>): Promise<ArchiveManifest> {
  let info: Record<string, string> = {};
  const infoMember = members.get('backup.info');
  if (infoMember) {
    const chunks: Buffer[] = [];
    await walkArchive(archive, (m) =>
      m === infoMember || (m.name === infoMember.name && m.size === infoMember.size)
        ? {
            data: (d) => {
              chunks.push(Buffer.from(d));
            },
            end: () => undefined,
          }
        : null,
    );
    info = parseInfo(Buffer.concat(chunks).toString('utf8'));
  }
  const parsed = parseBackupName(archive);
  const parts: ManifestPart[] = [];
  const add = (name: string, kind: ManifestPart['kind'], file: string, format: ManifestPart['format']) => {
    const m = members.get(file);
    if (m) parts.push({ name, kind, file, format, size: m.size, sha256: '' });
  };
  add('database', 'database', 'database.dump', 'pg_dump-custom');
  add('filestore', 'volume', 'filestore.tar.gz', 'tar.gz');
  add('addons', 'path', 'addons.tar.gz', 'tar.gz');
  return {
    format: MANIFEST_FORMAT,
    version: 1,
    name: parsed?.name ?? path.basename(archive).replace(/\.tar\.gz$/, ''),
    createdAt: parsed?.time.toISOString() ?? fs.statSync(archive).mtime.toISOString(),
    appEnv: info.app_env ?? info.environment ?? 'unknown',
    project: parsed?.project ?? 'unknown',
    database: info.database ?? info.db ?? info.db_name ?? '',
    images: {},
    tool: { name: 'backup.sh', version: 'legacy' },
    reason: 'manual',
    parts,
    legacy: true,
  };
}

function validateManifest(archive: string, text: string): ArchiveManifest {
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (err) {
    throw corrupt(archive, `manifest.json is not JSON (${(err as Error).message})`);
  }
  if (m.format !== MANIFEST_FORMAT || !Array.isArray(m.parts)) throw corrupt(archive, 'manifest.json is not a compose-tasks manifest');
  if (m.version > 1)
    throw new TaskError(`${path.basename(archive)} has manifest version ${m.version}; this tool reads version 1`, {
      exitCode: ExitCode.refused,
      hint: 'update compose-tasks',
    });
  for (const p of m.parts) {
    if (!p.file || p.file.includes('/') || p.file === MANIFEST_MEMBER || p.file.startsWith('.'))
      throw corrupt(archive, `manifest.json names an invalid member "${p.file}"`);
  }
  return m;
}

/** The manifest (the first member of our archives; synthesised for old backup.sh archives). */
export async function readManifest(archive: string): Promise<ArchiveManifest> {
  let text: string | undefined;
  let first = true;
  await walkArchive(archive, (m) => {
    if (!first) return 'stop';
    first = false;
    if (clean(m.name) !== MANIFEST_MEMBER || m.type !== '0') return 'stop';
    if (m.size > 16 * 1024 * 1024) throw corrupt(archive, 'manifest.json is implausibly large');
    const chunks: Buffer[] = [];
    return {
      data: (d) => {
        chunks.push(Buffer.from(d));
      },
      end: () => {
        text = Buffer.concat(chunks).toString('utf8');
      },
    };
  });
  if (text !== undefined) return validateManifest(archive, text);
  const members = await listMembers(archive);
  const legacy = legacyLayout(members);
  if (legacy) return legacyManifest(archive, legacy);
  throw new TaskError(`${path.basename(archive)} has no manifest.json (and is not an old backup.sh archive)`, {
    exitCode: ExitCode.refused,
    hint: 'nothing was changed; is this a backup made by compose-tasks?',
  });
}

/** Checks every member before anything is extracted: only the manifest and its parts, plain files, no escapes. */
export function checkMembers(archive: string, members: Member[], manifest: ArchiveManifest): void {
  const expected = new Set([...manifest.parts.map((p) => p.file), ...(manifest.legacy ? LEGACY_MEMBERS.map(String) : [MANIFEST_MEMBER])]);
  const seen = new Set<string>();
  for (const m of members) {
    const bad = unsafeMember(m);
    if (bad)
      throw new TaskError(`${path.basename(archive)} is refused: ${bad}`, {
        exitCode: ExitCode.refused,
        hint: 'nothing was extracted or changed',
      });
    if (m.type === '5') {
      if (manifest.legacy) continue;
      throw new TaskError(`${path.basename(archive)} is refused: unexpected folder ${m.name}`, {
        exitCode: ExitCode.refused,
        hint: 'nothing was extracted or changed',
      });
    }
    // Old backup.sh archives may carry ./ prefixes or one top folder (legacyLayout accepted only that).
    const name = manifest.legacy ? path.posix.basename(clean(m.name)) : clean(m.name);
    const ok = expected.has(name);
    if (!ok)
      throw new TaskError(`${path.basename(archive)} is refused: unexpected member ${m.name}`, {
        exitCode: ExitCode.refused,
        hint: 'nothing was extracted or changed',
      });
    if (seen.has(name))
      throw new TaskError(`${path.basename(archive)} is refused: member ${m.name} appears twice`, { exitCode: ExitCode.refused });
    seen.add(name);
  }
  for (const p of manifest.parts) {
    if (!seen.has(p.file))
      throw new TaskError(`${path.basename(archive)} is refused: ${p.file} (part ${p.name}) is missing`, {
        exitCode: ExitCode.refused,
        hint: 'nothing was changed; use another backup',
      });
  }
}

function mismatch(archive: string, p: ManifestPart, what: string): TaskError {
  return new TaskError(`${path.basename(archive)}: ${p.file} (part ${p.name}) ${what}`, {
    exitCode: ExitCode.refused,
    hint: 'the archive is damaged or was changed; nothing was touched',
  });
}

export interface CheckedArchive {
  manifest: ArchiveManifest;
  members: Member[];
  /** Part name -> extracted file (extractArchive only). */
  files: Record<string, string>;
}

/** Writes with back-pressure; each wait removes its own listeners (no listener pile-up on large parts). */
async function writeTo(ws: fs.WriteStream, chunk: Buffer): Promise<void> {
  if (ws.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => {
      ws.off('drain', onDrain);
      reject(e);
    };
    const onDrain = () => {
      ws.off('error', onError);
      resolve();
    };
    ws.once('drain', onDrain);
    ws.once('error', onError);
  });
}

/**
 * One pass over the archive checking each part's size and sha256 against the manifest; with `extractTo`
 * the parts (only those named in `only`, or all) are written there too, mode 0600.
 */
async function checkPass(
  archive: string,
  manifest: ArchiveManifest,
  o: {
    extractTo?: string;
    only?: (p: ManifestPart) => boolean;
    signal?: AbortSignal;
    onBytes?: (n: number) => void;
    members?: Member[];
    onPart?: (p: ManifestPart, file: string) => void;
  },
): Promise<Record<string, string>> {
  const byFile = new Map(manifest.parts.map((p) => [p.file, p]));
  const files: Record<string, string> = {};
  await walkArchive(
    archive,
    (m) => {
      o.members?.push(m);
      if (o.extractTo) {
        // Extracting: an unsafe member stops the pass at once (only manifest-named files are ever written, in a private folder).
        const bad = unsafeMember(m);
        if (bad)
          throw new TaskError(`${path.basename(archive)} is refused: ${bad}`, {
            exitCode: ExitCode.refused,
            hint: 'nothing was extracted or changed',
          });
      }
      const name = manifest.legacy ? path.posix.basename(clean(m.name)) : clean(m.name);
      const p = byFile.get(name);
      if (!p || m.type !== '0') return null;
      if (p.size !== m.size) throw mismatch(archive, p, `has ${m.size} bytes, the manifest says ${p.size}`);
      const h = crypto.createHash('sha256');
      let ws: fs.WriteStream | undefined;
      let target: string | undefined;
      if (o.extractTo && (!o.only || o.only(p))) {
        if (files[p.name])
          throw new TaskError(`${path.basename(archive)} is refused: member ${m.name} appears twice`, {
            exitCode: ExitCode.refused,
            hint: 'nothing was changed',
          });
        target = path.join(o.extractTo, name);
        ws = fs.createWriteStream(target, { flags: 'wx', mode: 0o600 });
        files[p.name] = target;
      }
      return {
        data: async (d) => {
          h.update(d);
          if (ws) await writeTo(ws, d);
        },
        end: async () => {
          if (ws) {
            ws.end();
            await once(ws, 'finish');
          }
          const sum = h.digest('hex');
          if (p.sha256 && p.sha256 !== sum)
            throw mismatch(archive, p, `has sha256 ${sum.slice(0, 12)}…, the manifest says ${p.sha256.slice(0, 12)}…`);
          if (target) o.onPart?.(p, target);
        },
      };
    },
    { signal: o.signal, onBytes: o.onBytes },
  );
  return files;
}

/** Reads the manifest, checks the member list, then checks every part's size and sha256 (no extraction). */
export async function checkArchive(
  archive: string,
  o: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<CheckedArchive> {
  const manifest = await readManifest(archive);
  // Nothing is extracted here, so one pass both checks the parts and collects the member list to judge after.
  const members: Member[] = [];
  await checkPass(archive, manifest, { ...o, members });
  checkMembers(archive, members, manifest);
  return { manifest, members, files: {} };
}

/**
 * Extracts the parts into `dir` (created 0700), checking sizes and sha256 as it writes, in one pass: an unsafe
 * member ('../', absolute, link, device) stops it at once, and the member list (unexpected, duplicate or missing
 * members) is judged before it returns. Only manifest-named part files are ever written, and on any failure they
 * are removed. `onPart` hears of each part as soon as it is written and its checksum matched (the rest may still
 * be unpacking), so a caller can start reading it.
 */
export async function extractArchive(
  archive: string,
  dir: string,
  o: {
    only?: (p: ManifestPart) => boolean;
    signal?: AbortSignal;
    onBytes?: (n: number) => void;
    onPart?: (p: ManifestPart, file: string) => void;
  } = {},
): Promise<CheckedArchive> {
  const manifest = await readManifest(archive);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const members: Member[] = [];
  try {
    const files = await checkPass(archive, manifest, { ...o, extractTo: dir, members });
    checkMembers(archive, members, manifest);
    return { manifest, members, files };
  } catch (err) {
    for (const p of manifest.parts) fs.rmSync(path.join(dir, p.file), { force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * One archive member (flat name): bytes (the manifest) or a file, at a deflate level (0 stores already compressed
 * data such as a dump, 1 for text), or a member writeFragment already wrote (a folder, compressed per 64 KB
 * piece), copied byte for byte.
 */
export type ArchiveInput =
  | { name: string; data: Buffer; level: 0 | 1 }
  | { name: string; file: string; level: 0 | 1 }
  | { name: string; fragment: string };

/** The unit a folder's compression is decided on (chunkLevel): small enough that one piece rarely mixes two files of a filestore. */
const AUTO_PIECE = 64 * 1024;

/**
 * Deflate (level 1) or store a piece of up to AUTO_PIECE bytes, from the byte entropy of a 4 KB sample in its
 * middle: media and compressed files measure close to 8 bits per byte (7.95 for a 4 KB sample of random bytes),
 * text and markup far below. Measuring costs microseconds; deflating incompressible data costs seconds.
 */
export function chunkLevel(piece: Buffer): 0 | 1 {
  if (piece.length === 0) return 0;
  const S = Math.min(4096, piece.length);
  const at = (piece.length - S) >> 1;
  const counts = new Uint32Array(256);
  for (let i = at; i < at + S; i++) counts[piece[i]!]!++;
  let bits = 0;
  for (const c of counts) if (c) bits -= (c / S) * Math.log2(c / S);
  // Short pieces measure lower even when random (a sample can hold at most log2(S) bits per byte).
  return bits < Math.min(7, Math.log2(S) - 1) ? 1 : 0;
}

/**
 * A .tar.gz being written as a run of gzip members: one per run of data with the same level (stored blocks for
 * dumps and media, level 1 for text), and raw bytes that already are whole gzip members (a fragment). gzip readers
 * (gzip -d, tar -z, Node) read concatenated members as one stream. Writes wait for the file (back-pressure).
 */
class GzipMembers {
  written = 0;
  level: number | undefined;
  private gz: zlib.Gzip | undefined;
  private failed: Error | undefined;
  private gzError: Promise<never> = new Promise<never>(() => undefined);
  private readonly wsError: Promise<never>;

  constructor(
    private readonly ws: fs.WriteStream,
    private readonly signal?: AbortSignal,
  ) {
    this.wsError = new Promise<never>((_, rej) =>
      ws.on('error', (e) => {
        this.failed = e;
        rej(e);
      }),
    );
    this.wsError.catch(() => undefined);
    ws.on('drain', () => this.gz?.resume());
  }

  private open(l: number): void {
    const g = zlib.createGzip({ level: l, chunkSize: CHUNK });
    g.on('data', (c: Buffer) => {
      this.written += c.length;
      if (!this.ws.write(c)) g.pause();
    });
    this.gzError = new Promise<never>((_, rej) =>
      g.on('error', (e) => {
        this.failed = e;
        rej(e);
      }),
    );
    this.gzError.catch(() => undefined);
    this.gz = g;
    this.level = l;
  }

  /** Ends the current gzip member (if any); what follows starts a new one. */
  async close(): Promise<void> {
    const g = this.gz;
    if (!g) return;
    g.end();
    await Promise.race([once(g, 'end'), this.gzError, this.wsError]);
    this.gz = undefined;
    this.level = undefined;
  }

  async setLevel(l: number): Promise<void> {
    if (this.gz && l === this.level) return;
    await this.close();
    this.open(l);
  }

  private check(): void {
    if (this.failed) throw this.failed;
    if (this.signal?.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
  }

  /** Bytes into the current member (level 1 when none is open). */
  async push(chunk: Buffer): Promise<void> {
    this.check();
    if (!this.gz) this.open(1);
    if (!this.gz!.write(chunk)) await Promise.race([once(this.gz!, 'drain'), this.gzError, this.wsError]);
  }

  /** Data of unknown compressibility: stored or deflated per 64 KB piece (chunkLevel). */
  async pushAuto(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length; at += AUTO_PIECE) {
      const piece = chunk.subarray(at, at + AUTO_PIECE);
      await this.setLevel(chunkLevel(piece));
      await this.push(piece);
    }
  }

  /** Bytes that already are whole gzip members, after the current member ends. */
  async raw(chunk: Buffer): Promise<void> {
    await this.close();
    this.check();
    this.written += chunk.length;
    if (!this.ws.write(chunk)) await Promise.race([once(this.ws, 'drain'), this.wsError]);
  }

  async finish(): Promise<void> {
    await this.close();
    this.ws.end();
    await Promise.race([once(this.ws, 'finish'), this.wsError]);
  }

  destroy(): void {
    this.gz?.destroy();
    this.ws.destroy();
  }
}

function writeFailed(out: string, err: unknown): unknown {
  fs.rmSync(out, { force: true });
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOSPC')
    return new TaskError(`no space left on the device writing ${out}`, {
      hint: 'free some space (or prune old backups); nothing was written under the final name',
      cause: err,
    });
  return err;
}

/**
 * Writes a .tar.gz streamed (created with O_EXCL, mode 0600, removed on any failure): tar headers and contents go
 * through GzipMembers, fragments are copied in as they are. Returns the bytes written.
 */
export async function writeArchive(
  out: string,
  members: ArchiveInput[],
  o: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<number> {
  const g = new GzipMembers(fs.createWriteStream(out, { flags: 'wx', mode: 0o600 }), o.signal);
  let copied = 0;
  try {
    for (const m of members) {
      if ('fragment' in m) {
        for await (const chunk of fs.createReadStream(m.fragment, { highWaterMark: CHUNK, signal: o.signal })) {
          await g.raw(chunk as Buffer);
          copied += (chunk as Buffer).length;
          o.onBytes?.(copied);
        }
        continue;
      }
      await g.setLevel(m.level);
      const size = 'data' in m ? m.data.length : fs.statSync(m.file).size;
      await g.push(tarHeader(m.name, size, Date.now()));
      let n = 0;
      if ('data' in m) {
        await g.push(m.data);
        n = m.data.length;
      } else {
        for await (const chunk of fs.createReadStream(m.file, { highWaterMark: CHUNK, signal: o.signal })) {
          await g.push(chunk as Buffer);
          n += (chunk as Buffer).length;
          copied += (chunk as Buffer).length;
          o.onBytes?.(copied);
        }
      }
      if (n !== size) throw new TaskError(`${'file' in m ? m.file : m.name} changed size while it was archived`);
      const pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (pad) await g.push(Buffer.alloc(pad));
    }
    await g.push(Buffer.alloc(BLOCK * 2));
    await g.finish();
  } catch (err) {
    g.destroy();
    throw writeFailed(out, err);
  }
  return g.written;
}

/** A tar header alone as one gzip member of stored blocks: its length depends only on the header's (512 bytes). */
const headerMember = (name: string, size: number, mtime: number) => zlib.gzipSync(tarHeader(name, size, mtime), { level: 0 });

/**
 * One archive member written ahead, from data arriving as a stream (a folder's tar output still being written):
 * a placeholder tar header, the data stored or deflated per 64 KB piece (chunkLevel), then its padding, as gzip members;
 * once the size is known the header is rewritten in place (same length). Returns the data's size and sha256,
 * taken from the same bytes. writeArchive copies the result in with `{ fragment }`.
 */
export async function writeFragment(
  out: string,
  name: string,
  src: AsyncIterable<Buffer>,
  o: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<{ size: number; sha256: string }> {
  const mtime = Date.now();
  const placeholder = headerMember(name, 0, mtime);
  const g = new GzipMembers(fs.createWriteStream(out, { flags: 'wx', mode: 0o600 }), o.signal);
  const h = crypto.createHash('sha256');
  let size = 0;
  try {
    await g.raw(placeholder);
    for await (const chunk of src) {
      h.update(chunk);
      size += chunk.length;
      await g.pushAuto(chunk);
      o.onBytes?.(size);
    }
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad) await g.push(Buffer.alloc(pad));
    await g.finish();
    const header = headerMember(name, size, mtime);
    if (header.length !== placeholder.length)
      throw new Error(`tar header member changed length (${placeholder.length} → ${header.length})`);
    const fd = fs.openSync(out, 'r+');
    try {
      fs.writeSync(fd, header, 0, header.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    g.destroy();
    throw writeFailed(out, err);
  }
  return { size, sha256: h.digest('hex') };
}
