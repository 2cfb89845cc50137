import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import {
  checkArchive,
  md5InWorker,
  extractArchive,
  hashFile,
  listMembers,
  readManifest,
  tarHeader,
  chunkLevel,
  walkArchive,
  writeArchive,
  writeFragment,
} from '../../scripts/backup/archive.ts';
import { ExitCode } from '../../scripts/core/errors.ts';
import type { Manifest } from '../../scripts/backup/manifest.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'archive-'));

async function build(
  dir: string,
  files: Record<string, Buffer>,
  tweak: (m: Manifest) => void = () => undefined,
): Promise<{ archive: string; manifest: Manifest }> {
  const parts = [];
  for (const [name, data] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), data);
    parts.push({
      name: name.split('.')[0]!,
      kind: name.endsWith('.dump') ? 'database' : 'path',
      file: name,
      format: name.endsWith('.dump') ? 'pg_dump-custom' : 'tar',
      ...(await hashFile(path.join(dir, name))),
    });
  }
  const manifest = {
    format: 'compose-tasks-backup',
    version: 1,
    name: 'odoo_backup_2026-01-02_03-04-05',
    createdAt: '2026-01-02T03:04:05.000Z',
    appEnv: 'development',
    project: 'odoo',
    database: 'odoo',
    images: {},
    tool: { name: 'compose-tasks', version: '0.1.0' },
    reason: 'manual',
    parts,
  } as Manifest;
  tweak(manifest);
  const archive = path.join(dir, 'odoo_backup_2026-01-02_03-04-05.tar.gz');
  await writeArchive(archive, [
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)), level: 1 },
    ...Object.keys(files).map((f) => ({ name: f, file: path.join(dir, f), level: 0 as const })),
  ]);
  return { archive, manifest };
}

/** A raw .tar.gz made of hand-built members (for hostile archives). */
function rawArchive(file: string, members: Array<{ name: string; data?: Buffer; type?: string; link?: string }>): void {
  const blocks: Buffer[] = [];
  for (const m of members) {
    const data = m.data ?? Buffer.alloc(0);
    const h = tarHeader(m.name.length > 100 ? 'x' : m.name, data.length, 0);
    if (m.name.length <= 100) h.write(m.name.padEnd(100, '\0'), 0, 100);
    if (m.type) h.write(m.type, 156);
    if (m.link) h.write(m.link, 157);
    h.fill(' ', 148, 156);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  fs.writeFileSync(file, zlib.gzipSync(Buffer.concat(blocks)));
}

/** A manifest with one database part: enough for the member checks. */
const DB_MANIFEST = Buffer.from(
  JSON.stringify({
    format: 'compose-tasks-backup',
    version: 1,
    name: 'n',
    parts: [{ name: 'database', kind: 'database', file: 'database.dump', format: 'pg_dump-custom', size: 1, sha256: '' }],
    images: {},
  }),
);

describe('archive', () => {
  it('writes a .tar.gz that GNU tar reads, manifest first, flat members, mode 0600', async () => {
    const dir = tmp();
    const dump = crypto.randomBytes(300_000);
    const { archive } = await build(dir, { 'database.dump': dump, 'addons.tar': Buffer.from('x'.repeat(5000)) });
    expect(fs.statSync(archive).mode & 0o777).toBe(0o600);
    const listing = execFileSync('tar', ['-tzf', archive], { encoding: 'utf8' }).trim().split('\n');
    expect(listing).toEqual(['manifest.json', 'database.dump', 'addons.tar']);
    const out = path.join(dir, 'x');
    fs.mkdirSync(out);
    execFileSync('tar', ['-xzf', archive, '-C', out]);
    expect(fs.readFileSync(path.join(out, 'database.dump')).equals(dump)).toBe(true);
    expect((await listMembers(archive)).map((m) => [m.name, m.size])).toEqual([
      ['manifest.json', expect.any(Number)],
      ['database.dump', 300_000],
      ['addons.tar', 5000],
    ]);
  });

  it('does not deflate already compressed data (random bytes cost ~nothing extra) and compresses text', async () => {
    expect(chunkLevel(crypto.randomBytes(1 << 20))).toBe(0);
    expect(chunkLevel(Buffer.from('<p>invoice line 42</p>\n'.repeat(50_000)))).toBe(1);
    expect(chunkLevel(crypto.randomBytes(1000))).toBe(0);
    expect(chunkLevel(Buffer.alloc(1000, 'a'))).toBe(1);
  });

  it('a folder mixing media and text has its text chunks deflated and its media stored; gzip and tar read it whole', async () => {
    const dir = tmp();
    const chunks = [
      crypto.randomBytes(1 << 20),
      Buffer.from('<p>invoice</p>\n'.repeat(70_000)).subarray(0, 1 << 20),
      crypto.randomBytes(1 << 20),
      Buffer.from('x,y\n'.repeat(1 << 18)),
    ];
    const content = Buffer.concat(chunks);
    async function* stream() {
      for (const c of chunks) yield c;
    }
    const frag = path.join(dir, 'filestore.tar.gz-member');
    await writeFragment(frag, 'filestore.tar', stream());
    const out = path.join(dir, 'a.tar.gz');
    await writeArchive(out, [
      { name: 'manifest.json', data: Buffer.from('{}'), level: 1 },
      { name: 'filestore.tar', fragment: frag },
    ]);
    const size = fs.statSync(out).size;
    expect(size).toBeGreaterThan(2 << 20); // the two random MB are in it as they are
    expect(size).toBeLessThan((2 << 20) + 200_000); // the two text MB shrank to almost nothing
    execFileSync('gzip', ['-t', out]);
    const x = path.join(dir, 'x');
    fs.mkdirSync(x);
    execFileSync('tar', ['-xzf', out, '-C', x]);
    expect(fs.readFileSync(path.join(x, 'filestore.tar')).equals(content)).toBe(true);
  });

  it('a member written ahead from a stream (writeFragment) and copied in is read whole by gzip, tar and checkArchive', async () => {
    const dir = tmp();
    // Mixed media and text, in uneven chunks, ending off a 512-byte boundary (the member needs padding).
    const chunks = [crypto.randomBytes(700_000), Buffer.from('<p>invoice</p>\n'.repeat(40_000)), crypto.randomBytes(123_457)];
    const content = Buffer.concat(chunks);
    async function* stream() {
      for (const c of chunks) yield c;
    }
    const frag = path.join(dir, 'filestore.tar.gz-member');
    const got = await writeFragment(frag, 'filestore.tar', stream());
    expect(got).toEqual({ size: content.length, sha256: crypto.createHash('sha256').update(content).digest('hex') });
    const dump = path.join(dir, 'database.dump');
    fs.writeFileSync(dump, crypto.randomBytes(5000));
    const manifest = {
      format: 'compose-tasks-backup',
      version: 1,
      name: 'odoo_backup_2026-01-02_03-04-05',
      createdAt: '2026-01-02T03:04:05.000Z',
      appEnv: 'development',
      project: 'odoo',
      database: 'odoo',
      images: {},
      tool: { name: 'compose-tasks', version: '0.1.0' },
      reason: 'manual',
      parts: [
        { name: 'database', kind: 'database', file: 'database.dump', format: 'pg_dump-custom', ...(await hashFile(dump)) },
        { name: 'filestore', kind: 'path', file: 'filestore.tar', format: 'tar', ...got },
      ],
    } as Manifest;
    const out = path.join(dir, 'odoo_backup_2026-01-02_03-04-05.tar.gz');
    await writeArchive(out, [
      { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)), level: 1 },
      { name: 'database.dump', file: dump, level: 0 },
      { name: 'filestore.tar', fragment: frag },
    ]);
    execFileSync('gzip', ['-t', out]);
    // The header rewritten in place carries the real size.
    expect(execFileSync('tar', ['-tvzf', out], { encoding: 'utf8' })).toMatch(new RegExp(`${content.length} .* filestore\\.tar`));
    const x = path.join(dir, 'x');
    fs.mkdirSync(x);
    execFileSync('tar', ['-xzf', out, '-C', x]);
    expect(fs.readFileSync(path.join(x, 'filestore.tar')).equals(content)).toBe(true);
    expect((await checkArchive(out)).members.map((m) => [m.name, m.size])).toEqual([
      ['manifest.json', JSON.stringify(manifest).length],
      ['database.dump', 5000],
      ['filestore.tar', content.length],
    ]);
    // The text was deflated, the random bytes stored.
    expect(fs.statSync(frag).size).toBeLessThan(823_457 + 100_000);
    expect(fs.statSync(frag).size).toBeGreaterThan(823_457);
  });

  it('a file MD5 computed on another thread equals the one computed here', async () => {
    const dir = tmp();
    const f = path.join(dir, 'f');
    const data = crypto.randomBytes(3_000_001);
    fs.writeFileSync(f, data);
    expect(await md5InWorker(f)).toBe(crypto.createHash('md5').update(data).digest('hex'));
    await expect(md5InWorker(path.join(dir, 'missing'))).rejects.toThrow(/ENOENT/);
  });

  it('stores level-0 members and deflates level-1 ones in one file that gzip and tar read (one gzip member per level run)', async () => {
    const dir = tmp();
    const rnd = path.join(dir, 'rnd');
    const txt = path.join(dir, 'txt');
    fs.writeFileSync(rnd, Buffer.alloc(2_000_000, 'a')); // compressible, but marked level 0: it must be stored as is
    fs.writeFileSync(txt, 'hello world\n'.repeat(200_000)); // 2.4 MB of text, level 1
    const out = path.join(dir, 'a.tar.gz');
    await writeArchive(out, [
      { name: 'manifest.json', data: Buffer.from('{}'), level: 1 },
      { name: 'rnd', file: rnd, level: 0 },
      { name: 'txt', file: txt, level: 1 },
    ]);
    const size = fs.statSync(out).size;
    expect(size).toBeGreaterThan(2_000_000); // the level-0 part is stored, not deflated
    expect(size).toBeLessThan(2_150_000); // the text part is deflated
    execFileSync('gzip', ['-t', out]);
    expect(execFileSync('tar', ['-tzf', out], { encoding: 'utf8' }).trim().split('\n')).toEqual(['manifest.json', 'rnd', 'txt']);
    expect((await listMembers(out)).map((m) => m.size)).toEqual([2, 2_000_000, 2_400_000]);
  });

  it('checkArchive passes a good archive and extractArchive writes the parts 0600', async () => {
    const dir = tmp();
    const { archive, manifest } = await build(dir, { 'database.dump': crypto.randomBytes(10_000) });
    const checked = await checkArchive(archive);
    expect(checked.manifest.name).toBe(manifest.name);
    const out = path.join(dir, 'out');
    const ex = await extractArchive(archive, out);
    expect(fs.statSync(ex.files.database!).mode & 0o777).toBe(0o600);
    expect((await hashFile(ex.files.database!)).sha256).toBe(manifest.parts[0]!.sha256);
  });

  it('refuses a part whose sha256 differs from the manifest', async () => {
    const dir = tmp();
    const { archive } = await build(dir, { 'database.dump': crypto.randomBytes(10_000) }, (m) => {
      m.parts[0]!.sha256 = '0'.repeat(64);
    });
    const err = await checkArchive(archive).catch((e) => e);
    expect(err.exitCode).toBe(ExitCode.refused);
    expect(err.message).toMatch(/database.dump.*sha256/);
    const out = path.join(dir, 'out');
    await expect(extractArchive(archive, out)).rejects.toThrow(/sha256/);
    expect(fs.existsSync(path.join(out, 'database.dump'))).toBe(false);
  });

  it('refuses a part whose size differs from the manifest, and a truncated archive', async () => {
    const dir = tmp();
    const { archive } = await build(dir, { 'database.dump': crypto.randomBytes(10_000) }, (m) => {
      m.parts[0]!.size = 9_999;
    });
    await expect(checkArchive(archive)).rejects.toThrow(/10000 bytes, the manifest says 9999/);
    const good = await build(tmp(), { 'database.dump': crypto.randomBytes(200_000) });
    const cut = path.join(dir, 'cut_backup_2026-01-02_03-04-05.tar.gz');
    fs.writeFileSync(cut, fs.readFileSync(good.archive).subarray(0, 100_000));
    await expect(checkArchive(cut)).rejects.toThrow(/corrupt or truncated/);
  });

  it('refuses an archive whose tar header checksum is wrong, in one line', async () => {
    const dir = tmp();
    const file = path.join(dir, 'badsum_backup_2026-01-02_03-04-05.tar.gz');
    const tar = zlib.gunzipSync(fs.readFileSync((await build(tmp(), { 'database.dump': Buffer.from('x') })).archive));
    tar[0] = tar[0]! ^ 0x20; // change the first member's name without fixing its checksum
    fs.writeFileSync(file, zlib.gzipSync(tar));
    const err = await checkArchive(file).catch((e) => e);
    expect(err?.message).toMatch(/corrupt or truncated: a tar header has a bad checksum$/);
    expect(err.message).not.toContain('\n');
    expect(err.exitCode).toBe(ExitCode.refused);
  });

  it('rejects ../, absolute paths, links and unexpected members before extracting anything', async () => {
    const manifest = DB_MANIFEST;
    const cases: Array<[string, Array<{ name: string; data?: Buffer; type?: string; link?: string }>, RegExp]> = [
      [
        'dotdot',
        [
          { name: 'manifest.json', data: manifest },
          { name: 'database.dump', data: Buffer.from('x') },
          { name: '../evil', data: Buffer.from('x') },
        ],
        /leaves the folder/,
      ],
      [
        'absolute',
        [
          { name: 'manifest.json', data: manifest },
          { name: 'database.dump', data: Buffer.from('x') },
          { name: '/etc/evil', data: Buffer.from('x') },
        ],
        /absolute path/,
      ],
      [
        'symlink',
        [
          { name: 'manifest.json', data: manifest },
          { name: 'database.dump', type: '2', link: '/etc/passwd' },
        ],
        /link to \/etc\/passwd/,
      ],
      [
        'hardlink',
        [
          { name: 'manifest.json', data: manifest },
          { name: 'database.dump', data: Buffer.from('x') },
          { name: 'other', type: '1', link: 'database.dump' },
        ],
        /link/,
      ],
      [
        'unexpected',
        [
          { name: 'manifest.json', data: manifest },
          { name: 'database.dump', data: Buffer.from('x') },
          { name: 'run-me.sh', data: Buffer.from('x') },
        ],
        /unexpected member run-me.sh/,
      ],
      ['missing', [{ name: 'manifest.json', data: manifest }], /database.dump \(part database\) is missing/],
    ];
    for (const [label, members, re] of cases) {
      const dir = tmp();
      const file = path.join(dir, `${label}.tar.gz`);
      rawArchive(file, members);
      const out = path.join(dir, 'out');
      const err = await extractArchive(file, out).catch((e) => e);
      expect(err?.message, label).toMatch(re);
      expect(err.exitCode, label).toBe(ExitCode.refused);
      expect(fs.existsSync(out) ? fs.readdirSync(out) : [], label).toEqual([]);
      expect(fs.existsSync(path.join(dir, 'evil')), label).toBe(false);
    }
  });

  it('refuses an archive with no manifest that is not an old backup.sh archive', async () => {
    const dir = tmp();
    const file = path.join(dir, 'x.tar.gz');
    rawArchive(file, [{ name: 'random.txt', data: Buffer.from('x') }]);
    await expect(readManifest(file)).rejects.toThrow(/no manifest.json/);
  });

  it('recognises an old backup.sh archive and synthesises a legacy manifest', async () => {
    const dir = tmp();
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'database.dump'), crypto.randomBytes(1000));
    fs.writeFileSync(path.join(src, 'filestore.tar.gz'), zlib.gzipSync(Buffer.alloc(1024)));
    fs.writeFileSync(path.join(src, 'addons.tar.gz'), zlib.gzipSync(Buffer.alloc(1024)));
    fs.writeFileSync(path.join(src, 'backup.info'), 'Database: odoo\nDate: 2025-01-01\n');
    const file = path.join(dir, 'odoo_backup_2025-01-01_02-00-00.tar.gz');
    execFileSync('tar', ['-C', src, '-czf', file, 'database.dump', 'filestore.tar.gz', 'addons.tar.gz', 'backup.info']);
    const m = await readManifest(file);
    expect(m.legacy).toBe(true);
    expect(m.database).toBe('odoo');
    expect(m.createdAt).toBe('2025-01-01T02:00:00.000Z');
    expect(m.parts.map((p) => [p.name, p.file, p.format, p.size])).toEqual([
      ['database', 'database.dump', 'pg_dump-custom', 1000],
      ['filestore', 'filestore.tar.gz', 'tar.gz', fs.statSync(path.join(src, 'filestore.tar.gz')).size],
      ['addons', 'addons.tar.gz', 'tar.gz', fs.statSync(path.join(src, 'addons.tar.gz')).size],
    ]);
    const ex = await extractArchive(file, path.join(dir, 'out'));
    expect(fs.readFileSync(ex.files.database!).equals(fs.readFileSync(path.join(src, 'database.dump')))).toBe(true);
  });

  it.each([
    ['packed from inside the folder (./ prefixes)', ['-C', 'SRC', '.']],
    ['packed with its folder as the top directory', ['-C', 'PARENT', 'odoo_backup_2025-01-01_02-00-00']],
  ])('extracts an old backup.sh archive %s', async (_label, how) => {
    const dir = tmp();
    const src = path.join(dir, 'odoo_backup_2025-01-01_02-00-00');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'database.dump'), crypto.randomBytes(1000));
    fs.writeFileSync(path.join(src, 'filestore.tar.gz'), zlib.gzipSync(Buffer.alloc(1024)));
    fs.writeFileSync(path.join(src, 'addons.tar.gz'), zlib.gzipSync(Buffer.alloc(1024)));
    fs.writeFileSync(path.join(src, 'backup.info'), 'Database: odoo\n');
    const file = path.join(dir, 'odoo_backup_2025-01-01_02-00-00.tar.gz');
    execFileSync('tar', ['-czf', file, ...how.map((a) => a.replace('SRC', src).replace('PARENT', dir))]);
    const ex = await extractArchive(file, path.join(dir, 'out'));
    expect(Object.keys(ex.files).sort()).toEqual(['addons', 'database', 'filestore']);
    expect(fs.readFileSync(ex.files.database!).equals(fs.readFileSync(path.join(src, 'database.dump')))).toBe(true);
  });
});

/** One raw tar header block (type flag, optional link), its checksum fixed. */
function block(name: string, size: number, type = '0'): Buffer {
  const h = tarHeader('x', size, 0);
  h.write(name.padEnd(100, '\0'), 0, 100);
  h.write(type, 156);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}
const padded = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
const member = (name: string, data: Buffer, type = '0') => Buffer.concat([block(name, data.length, type), padded(data)]);
const paxRecord = (key: string, value: string) => {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (`${len}${body}`.length !== len) len++;
  return `${len}${body}`;
};

describe('archive reading (tar-stream)', () => {
  const dbManifest = DB_MANIFEST;

  it('refuses a plain .tar cut in the middle of a member, or of a header, as corrupt in one line', async () => {
    const dir = tmp();
    const tar = Buffer.concat([member('manifest.json', dbManifest), member('database.dump', crypto.randomBytes(5000)), Buffer.alloc(1024)]);
    for (const [label, at] of [
      ['mid-member', 1024 + 512 + 100],
      ['mid-header', 1024 + 200],
    ] as const) {
      const file = path.join(dir, `${label}.tar`);
      fs.writeFileSync(file, tar.subarray(0, at));
      const err = await listMembers(file).catch((e) => e);
      expect(err?.message, label).toMatch(/corrupt or truncated: it ends in the middle of a member$/);
      expect(err.message, label).not.toContain('\n');
      expect(err.exitCode, label).toBe(ExitCode.refused);
    }
    const gz = path.join(dir, 'cut.tar.gz');
    fs.writeFileSync(gz, zlib.gzipSync(tar).subarray(0, 3000));
    const err = await listMembers(gz).catch((e) => e);
    expect(err?.message).toBe('cut.tar.gz is corrupt or truncated: unexpected end of file');
    expect(err.message).not.toContain('\n');
  });

  it('reads PAX and GNU long names (so a hidden long-named member is still refused by name) and refuses a huge PAX header', async () => {
    const dir = tmp();
    const long = `${'d/'.repeat(80)}run-me.sh`;
    const pax = Buffer.from(paxRecord('path', long));
    for (const [label, extra] of [
      ['pax', Buffer.concat([member('PaxHeader/x', pax, 'x'), member('x', Buffer.from('x'))])],
      ['gnu', Buffer.concat([member('././@LongLink', Buffer.from(`${long}\0`), 'L'), member('x', Buffer.from('x'))])],
    ] as const) {
      const file = path.join(dir, `${label}.tar`);
      fs.writeFileSync(
        file,
        Buffer.concat([member('manifest.json', dbManifest), member('database.dump', Buffer.from('x')), extra, Buffer.alloc(1024)]),
      );
      expect(
        (await listMembers(file)).map((m) => m.name),
        label,
      ).toEqual(['manifest.json', 'database.dump', long]);
      const err = await checkArchive(file).catch((e) => e);
      expect(err?.message, label).toBe(`${label}.tar is refused: unexpected member ${long}`);
    }
    const huge = path.join(dir, 'huge.tar');
    const big = Buffer.from(paxRecord('comment', 'x'.repeat(5 << 20)));
    fs.writeFileSync(
      huge,
      Buffer.concat([member('manifest.json', dbManifest), member('PaxHeader/x', big, 'x'), member('x', Buffer.from('x'))]),
    );
    const err = await listMembers(huge).catch((e) => e);
    expect(err?.message).toBe('huge.tar is corrupt or truncated: a tar extended header is larger than 4 MB');
  });

  it('reads members past the end-of-archive blocks (as tar -i would), so nothing can hide behind them', async () => {
    const dir = tmp();
    const file = path.join(dir, 'behind.tar');
    const tail = member('run-me.sh', Buffer.from('x'));
    fs.writeFileSync(
      file,
      Buffer.concat([member('manifest.json', dbManifest), member('database.dump', Buffer.from('x')), Buffer.alloc(1024), tail]),
    );
    await expect(checkArchive(file)).rejects.toThrow(/^behind.tar is refused: unexpected member run-me.sh$/);
    const junk = path.join(dir, 'junk.tar');
    fs.writeFileSync(junk, Buffer.concat([member('manifest.json', dbManifest), Buffer.alloc(1024), crypto.randomBytes(512)]));
    await expect(listMembers(junk)).rejects.toThrow(/^junk.tar is corrupt or truncated: a tar header has a bad checksum$/);
  });

  it('reads a size past 8 GiB (GNU base-256, as tarHeader writes it) exactly', async () => {
    const file = path.join(tmp(), 'big.tar');
    const size = 9 * 2 ** 30 + 12_345;
    fs.writeFileSync(file, tarHeader('database.dump', size, 0)); // the header alone: the visitor stops before the data
    const sizes: number[] = [];
    await walkArchive(file, (m) => {
      sizes.push(m.size);
      return 'stop';
    });
    expect(sizes).toEqual([size]);
  });

  it('a slow sink slows the reading: the file is read at most a few MB ahead of what the sink took', async () => {
    const dir = tmp();
    const { archive } = await build(dir, { 'database.dump': crypto.randomBytes(48 << 20) });
    let taken = 0;
    let lead = 0;
    await walkArchive(
      archive,
      (m) =>
        m.name === 'database.dump'
          ? {
              data: async (d) => {
                taken += d.length;
                await new Promise((r) => setTimeout(r, 2));
              },
              end: () => undefined,
            }
          : null,
      { onBytes: (n) => (lead = Math.max(lead, n - taken)) },
    );
    expect(taken).toBe(48 << 20);
    expect(lead).toBeLessThan(8 << 20);
  });

  it('an abort ends the walk at once with an AbortError, and a visitor may stop it', async () => {
    const dir = tmp();
    const { archive } = await build(dir, { 'database.dump': crypto.randomBytes(8 << 20) });
    const ac = new AbortController();
    let chunks = 0;
    const err = await walkArchive(
      archive,
      () => ({
        data: () => {
          if (++chunks === 2) ac.abort();
        },
        end: () => undefined,
      }),
      { signal: ac.signal },
    ).catch((e) => e);
    expect(err?.name).toBe('AbortError');
    expect(chunks).toBeLessThan(8);
    const seen: string[] = [];
    await walkArchive(archive, (m) => {
      seen.push(m.name);
      return 'stop';
    });
    expect(seen).toEqual(['manifest.json']);
  });
});
