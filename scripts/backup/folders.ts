// A folder part of a restore (a volume in a service, or a path on the host or on a remote engine's host): its layout,
// the member check of its own tar, and the three scripts that stage it beside the folder, swap it in and put the
// previous one back. The commands are plain data (Cmd), so a restore's journal can keep them for tasks recover.
import path from 'node:path';
import type { TaskContext } from '../core/define.ts';
import { ExitCode, TaskError } from '../core/errors.ts';
import type { Cmd } from '../core/runner.ts';
import type { ManifestPart } from './manifest.ts';

/**
 * How a folder's tar is laid out, from its member names: `strip` leading components (an old archive holding the
 * folder itself, e.g. `filestore/<db>/…`), and `into` a sub-folder (a tar of one database's filestore contents).
 */
export function folderLayout(names: string[], folder: string, database?: string): { strip: number; into: string } {
  const clean = names.map((n) => n.replace(/^(\.\/)+/, '').replace(/\/$/, '')).filter((n) => n && n !== '.');
  if (!clean.length) return { strip: 0, into: '' };
  const underFolder = clean.every((n) => n === folder || n.startsWith(`${folder}/`));
  const strip = underFolder ? 1 : 0;
  const rest = clean.map((n) => n.split('/').slice(strip).join('/')).filter(Boolean);
  const tops = new Set(rest.map((n) => n.split('/')[0]!));
  if (database && !tops.has(database) && tops.size > 0 && [...tops].every((t) => /^[0-9a-f]{2}$/.test(t) || t === 'checklist')) {
    return { strip, into: database };
  }
  return { strip, into: '' };
}

/**
 * Unpacks a folder part from a tar on stdin into $work/new (next to the folder, same filesystem), renames the database
 * folder for --as and sets the owner. The live folder is not touched yet. Runs on the host (path parts) or as root in
 * the service (volumes), while the database is being restored.
 *   $1 dest  $2 work  $3 strip  $4 into  $5 from  $6 to  $7 owner  $8 gz(1|'')
 */
export const STAGE_SCRIPT = [
  'set -euo pipefail',
  'dest=$1 work=$2 strip=$3 into=$4 from=$5 to=$6 owner=$7 gz=$8',
  'stage=$work/new',
  // owner "=": the folder's own owner (its parent's when new), for a path part restored as root on a remote engine.
  'if [ "$owner" = = ]; then owner=$(stat -c %u:%g "$dest" 2>/dev/null || stat -c %u:%g "$(dirname "$dest")"); fi',
  'rm -rf "$work"; mkdir -p "$stage/$into" "$work/old" "$dest"; : > "$work/added"',
  'tar -x ${gz:+-z} --no-same-owner --no-same-permissions --strip-components="$strip" -C "$stage/$into" -f -',
  'if [ -n "$from" ] && [ "$from" != "$to" ] && [ -e "$stage/$from" ]; then rm -rf "${stage:?}/$to"; mv "$stage/$from" "$stage/$to"; fi',
  'if [ -n "$owner" ]; then chown -R "$owner" "$stage"; fi',
].join('\n');

/**
 * Swaps the staged entries in by rename, keeping the previous ones in $work/old until `commit` (rm -rf $work) or
 * SWAP_BACK_SCRIPT. entries: only the top-level entries in the archive (filestore/<db>); whole: the folder itself.
 * Safe to run again after a kill at any point (tasks recover finishes a swap with it): the mode is recorded first, and
 * per entry the previous one is moved aside, then its name recorded, then the new one moved in.
 *   $1 dest  $2 work  $3 mode(entries|whole)
 */
export const SWAP_SCRIPT = [
  'set -euo pipefail',
  'dest=$1 work=$2 mode=$3 stage=$2/new old=$2/old',
  'shopt -s dotglob nullglob',
  'if [ "$mode" = whole ]; then',
  '  echo whole > "$work/added"',
  '  if [ -d "$stage" ]; then if [ -e "$dest" ] || [ -L "$dest" ]; then mv "$dest" "$old/folder"; fi; mv "$stage" "$dest"; fi',
  'else',
  '  for e in "$stage"/*; do n=${e##*/}; if [ -e "$dest/$n" ] || [ -L "$dest/$n" ]; then mv "$dest/$n" "$old/$n"; fi; ' +
    'printf "%s\\n" "$n" >> "$work/added"; mv "$e" "$dest/$n"; done',
  'fi',
].join('\n');

/** Puts the previous entries back (undoing SWAP_SCRIPT; after STAGE_SCRIPT alone it only removes $work).  $1 dest  $2 work */
export const SWAP_BACK_SCRIPT = [
  'set -uo pipefail',
  'dest=$1 work=$2 old=$2/old',
  '[ -d "$work" ] || exit 0',
  'shopt -s dotglob nullglob',
  'if [ "$(head -n1 "$work/added" 2>/dev/null)" = whole ]; then',
  '  if [ -d "$old/folder" ]; then rm -rf "${dest:?}"; mv "$old/folder" "$dest"; fi',
  'else',
  '  while IFS= read -r n; do [ -n "$n" ] && rm -rf "${dest:?}/$n"; done < "$work/added"',
  '  for e in "$old"/*; do mv "$e" "$dest/${e##*/}"; done',
  'fi',
  'rm -rf "$work"',
].join('\n');

const isGzipPart = (part: ManifestPart) => /\.gz$/.test(part.file) || String(part.format).includes('gz');

/**
 * The member names of a folder part's own tar, checked like the archive's members: an absolute path, `../`, a link
 * pointing outside or anything but files, folders and links refuses the whole backup. Part of the verification,
 * so it runs before anything is touched.
 */
export async function listFolderPart(ctx: TaskContext, backup: string, part: ManifestPart, file: string): Promise<FolderListing> {
  const r = await ctx.probe.run({
    argv: ['tar', `-t${isGzipPart(part) ? 'z' : ''}vf`, file, '--numeric-owner'],
    stdout: 'capture',
    stderr: 'capture',
  });
  const names: string[] = [];
  let bytes = 0;
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const m = /^(\S)\S*\s+\S+\s+(\d+)\s+\S+\s+\S+\s(.*)$/.exec(line);
    if (!m) continue;
    const type = m[1]!;
    bytes += Number(m[2]);
    let n = m[3]!;
    let target: string | undefined;
    if (type === 'l') [n, target] = n.split(' -> ') as [string, string];
    if (type === 'h') [n, target] = n.split(' link to ') as [string, string];
    const norm = n.replace(/^(\.\/)+/, '');
    const bad = norm.startsWith('/')
      ? 'absolute path'
      : norm.split('/').includes('..')
        ? 'path leaves the folder'
        : type === 'l' &&
            target !== undefined &&
            (target.startsWith('/') || path.posix.normalize(path.posix.join(path.posix.dirname(norm), target)).startsWith('..'))
          ? `link to ${target} points outside`
          : type === 'h' && target !== undefined && (target.startsWith('/') || target.split('/').includes('..'))
            ? `hard link to ${target} points outside`
            : !['-', 'd', 'l', 'h'].includes(type)
              ? `not a regular file (${type})`
              : undefined;
    if (bad)
      throw new TaskError(`${backup}: ${part.file} is refused: ${n}: ${bad}`, { exitCode: ExitCode.refused, hint: 'nothing was changed' });
    names.push(n);
  }
  return { names, bytes };
}

/** A folder part's own tar, listed: its member names and the bytes its files take once unpacked. */
export interface FolderListing {
  names: string[];
  bytes: number;
}

/**
 * What a restore does with one folder part, as plain commands: `stage` (unpack beside the folder, from the part's tar
 * on stdin), `swap` (rename it in), `back` (put the previous one back; bounded) and `remove` (the previous copy, once
 * the restore is committed). Kept in the journal, so tasks recover can finish or undo a killed restore.
 */
export interface FolderCmds {
  part: string;
  /** Where the folder is, for messages. */
  where: string;
  owner: string;
  stage: Cmd;
  swap: Cmd;
  back: Cmd;
  remove: Cmd;
  /** A path part on a remote engine's host: the image of the one-off container, for explaining a failure. */
  image?: string;
  dest: string;
  /**
   * Where the previous copy is once swapped out (the safety archive reads it there): a path in the service (a volume:
   * the entries that were replaced) or on the host (a path part: the whole folder). Kept until the commit.
   */
  previous: string;
  /** A path part on this machine: the folder the staged copy is unpacked in (its free space is checked first). */
  localParent?: string;
}

export interface FolderInput {
  part: ManifestPart;
  /** The part's own tar, unpacked from the archive. */
  file: string;
  project: import('../tools/compose.ts').ComposeProject | undefined;
  stamp: string;
  fromDb?: string;
  toDb: string;
  /** The part's member names (listFolderPart), read during the verification; none in a dry run. */
  names?: string[];
  /** The engine is remote: a path part lives on its host and is restored through a one-off container. */
  remote?: boolean;
}

/** Where a folder part goes: a volume's path in its service, or a path on the host (tasks.ts names it, or the backup). */
function destinationOf(ctx: TaskContext, part: ManifestPart): string {
  const cfg = ctx.config.backupParts.find((p) => p.name === part.name);
  const dest =
    part.kind === 'volume'
      ? (part.path ?? (cfg?.kind === 'volume' ? cfg.path : undefined))
      : path.resolve(ctx.root, part.path ?? (cfg?.kind === 'path' ? cfg.path : part.name));
  if (!dest)
    throw new TaskError(`part ${part.name}: the backup does not say where it goes and tasks.ts has no such part`, {
      exitCode: ExitCode.usage,
    });
  return dest;
}

/** A folder part staged beside the folder, swapped in later, the previous entries kept until the end. */
export async function planFolder(ctx: TaskContext, o: FolderInput): Promise<FolderCmds> {
  const { part, project } = o;
  const cfg = ctx.config.backupParts.find((p) => p.name === part.name);
  const isVolume = part.kind === 'volume';
  const dest = destinationOf(ctx, part);
  const engine = await import('../tools/engine.ts');
  // A path part on a remote engine: the same scripts, as root in a one-off app container with the folder's parent mounted.
  const onServer = !isVolume && Boolean(o.remote);
  const image = onServer ? await engine.pathPartImage(ctx, cfg?.kind === 'path' ? cfg : { name: part.name }) : undefined;
  const service = part.service ?? (cfg?.kind === 'volume' ? cfg.service : undefined);
  const owner = onServer ? '=' : (part.owner ?? (cfg?.kind === 'volume' ? cfg.owner : undefined) ?? '');
  // Inner member names decide the layout (old archives hold the folder itself).
  const layout = o.names
    ? folderLayout(
        o.names,
        path.posix.basename(isVolume ? dest : (part.path ?? part.name)),
        part.name === 'filestore' || /filestore/.test(dest) ? o.fromDb || o.toDb : undefined,
      )
    : { strip: 0, into: '' };
  const fromDb = isVolume && layout.into === '' && o.fromDb && o.fromDb !== o.toDb ? o.fromDb : '';
  const into = layout.into ? o.toDb : '';
  const where = isVolume
    ? `${service}:${dest}`
    : `${path.relative(ctx.root, dest) || dest}${onServer ? ` on the engine's host (through ${image})` : ''}`;
  // On the server the folder is seen inside the container, under the mount of its parent.
  const inside = onServer ? engine.inPartMount(dest) : dest;
  // A volume's staging folder goes inside the folder itself: its parent may be outside the volume (a volume mounted at
  // /app/uploads), in the one-off container's own layer, which is gone before the swap runs in the next one.
  const work = isVolume
    ? `${dest.replace(/\/+$/, '')}/.compose-tasks-restore-${part.name}-${o.stamp}`
    : path.posix.join(path.dirname(inside), `.${path.basename(dest)}.restore-${o.stamp}`);
  const { compose } = await import('../tools/compose.ts');
  if (isVolume && (!project || !service))
    throw new TaskError(`part ${part.name} is a volume of a service: it needs the compose stack`, { exitCode: ExitCode.prerequisite });
  // Volumes: a one-off root container of the service with the volume mounted (works whether the app runs or not).
  const run = (script: string, a: string[], stdin?: Cmd['stdin']): Cmd => {
    const argv = ['bash', '-c', script, 'bash', ...a];
    return {
      argv: isVolume
        ? compose.run(project!, service!, argv, { noDeps: true, user: 'root' })
        : onServer
          ? engine.hostPathRun(image!, dest, 'bash', argv.slice(1))
          : argv,
      stdin: stdin ?? 'ignore',
      stderr: 'capture',
    };
  };
  const gz = isGzipPart(part) ? '1' : '';
  // The previous copy, as the backup of this part reads it: in the service (a volume) or on the host (a path part).
  const previous = isVolume ? `${work}/old` : path.join(path.dirname(dest), `.${path.basename(dest)}.restore-${o.stamp}`, 'old', 'folder');
  return {
    part: part.name,
    where,
    owner,
    dest,
    image,
    previous,
    ...(isVolume || onServer ? {} : { localParent: path.dirname(dest) }),
    stage: run(STAGE_SCRIPT, [inside, work, String(layout.strip), into, fromDb, o.toDb, owner, gz], { file: o.file }),
    swap: run(SWAP_SCRIPT, [inside, work, isVolume ? 'entries' : 'whole']),
    back: swapBackCmd(ctx, run(SWAP_BACK_SCRIPT, [inside, work]), isVolume ? `${o.stamp}-${part.name}` : undefined),
    remove: run('rm -rf -- "$1"', [work]),
  };
}

/** Unpacks a folder part beside its folder (the live folder is not touched). */
export async function stageFolder(ctx: TaskContext, f: FolderCmds): Promise<void> {
  ctx.log.step(`unpacking ${f.part} beside ${f.where}${f.owner && f.owner !== '=' ? ` (owner ${f.owner})` : ''}`);
  try {
    await ctx.runner.run(f.stage);
  } catch (err) {
    if (!f.image) throw err;
    const engine = await import('../tools/engine.ts');
    throw engine.explainHostPathError(err, f.image, f.dest);
  }
}

/**
 * How long a rollback step of a folder may take (RESTORE_ROLLBACK_TIMEOUT seconds overrides it) before it is stopped
 * and reported with the command that finishes it.
 */
export const ROLLBACK_STEP_MS = 10 * 60_000;

/**
 * A folder's swap back, bounded: a one-off container that never ends (an image whose entrypoint ignores its
 * command) is stopped after ROLLBACK_STEP_MS, removed by name, and the warning says which command finishes it.
 */
function swapBackCmd(ctx: TaskContext, cmd: Cmd, oneOff?: string): Cmd {
  const manual = ctx.runner.display(cmd);
  const set = Number(ctx.env.get('RESTORE_ROLLBACK_TIMEOUT'));
  const timeoutMs = Number.isInteger(set) && set > 0 ? set * 1000 : ROLLBACK_STEP_MS;
  if (!oneOff) return { ...cmd, timeoutMs, manual };
  const name = `compose-tasks-rollback-${oneOff}`.replace(/[^A-Za-z0-9_.-]/g, '-');
  const i = cmd.argv.indexOf('run');
  const argv = i < 0 ? cmd.argv : [...cmd.argv.slice(0, i + 1), '--name', name, ...cmd.argv.slice(i + 1)];
  return { ...cmd, argv, timeoutMs, container: name, manual };
}
