// The journal of a change in progress: one fsynced JSON line per step, so a change killed at any point can be
// finished or undone from its records (tasks recover: scripts/backup/recover.ts).
// Kept in <BACKUP_DIR>/.journal/<op>-<pid>.jsonl; removed on success.
import fs from 'node:fs';
import path from 'node:path';

/** What a journal line records: the facts needed to undo or finish the change from this step on. */
export interface JournalRecord {
  op: string;
  pid: number;
  step: string;
  /** ISO time the step started. */
  at: string;
  /** Whether the commit point was passed (then recover finishes the change instead of undoing it). */
  committed: boolean;
  /** Database names, staging/aside folder paths, services stopped, …: whatever the plan's state holds that is plain data. */
  facts: Record<string, unknown>;
}

export interface Journal {
  readonly file: string;
  append(step: string, facts: Record<string, unknown>, committed?: boolean): void;
  /** The change finished: the journal goes. */
  remove(): void;
}

export const journalDir = (backupDir: string) => path.join(backupDir, '.journal');

function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Opens the journal of operation `op` by this process. Each append is written and fsynced, then its folder is. */
export function openJournal(backupDir: string, op: string, pid = process.pid): Journal {
  const dir = journalDir(backupDir);
  const file = path.join(dir, `${op}-${pid}.jsonl`);
  return {
    file,
    append(step, facts, committed = false) {
      fs.mkdirSync(dir, { recursive: true });
      const rec: JournalRecord = { op, pid, step, at: new Date().toISOString(), committed, facts };
      const fd = fs.openSync(file, 'a', 0o600);
      try {
        fs.writeSync(fd, `${JSON.stringify(rec)}\n`);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fsyncPath(dir);
    },
    remove() {
      fs.rmSync(file, { force: true });
      if (!fs.existsSync(dir)) return;
      fsyncPath(dir);
      try {
        fs.rmdirSync(dir); // the last journal: the folder goes too
        fsyncPath(backupDir);
      } catch {
        // another change's journal is still in it
      }
    },
  };
}

/** Whether a process with this pid runs (EPERM: it does, as another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An interrupted change: its journal file and records (a torn last line, from a kill mid-write, is dropped). */
export interface Unfinished {
  file: string;
  op: string;
  pid: number;
  records: JournalRecord[];
  /** The last record: the step that was running when the process died. */
  last: JournalRecord;
}

function parseLines(text: string): JournalRecord[] {
  const out: JournalRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as JournalRecord);
    } catch {
      // a torn line: the process died while writing it, the step had not started
    }
  }
  return out;
}

/** Journals in `backupDir` left by processes that are no longer alive. */
export function readUnfinished(backupDir: string, alive: (pid: number) => boolean = isAlive): Unfinished[] {
  const dir = journalDir(backupDir);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: Unfinished[] = [];
  for (const name of names.sort()) {
    const m = /^(.+)-(\d+)\.jsonl$/.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    if (alive(pid)) continue;
    const file = path.join(dir, name);
    const records = parseLines(fs.readFileSync(file, 'utf8'));
    if (!records.length) continue;
    out.push({ file, op: m[1]!, pid, records, last: records[records.length - 1]! });
  }
  return out;
}

/** The one line doctor and lock takers print: "restore of X into odoo was interrupted at 'swap folders' (…: <journal>)". */
export function describeUnfinished(u: Unfinished): string {
  const f = u.last.facts as { backup?: unknown; database?: unknown };
  const what = f.backup && f.database ? `${u.op} of ${String(f.backup)} into ${String(f.database)}` : u.op;
  return `${what} was interrupted at '${u.last.step}' (what each step changed: ${u.file})`;
}

/**
 * The hooks that keep a plan's journal: a record before each step that changes state (committed once the step named
 * `commitPoint` has run), and the journal removed when the plan ended: committed, undone, or kept by a failed health
 * check. A failed undo keeps it, for tasks recover.
 */
export function journalHooks<S>(journal: Journal, factsOf: (s: S) => Record<string, unknown>, commitPoint?: string, passed = false) {
  return {
    beforeStep(step: { name: string }, _i: number, s: S) {
      journal.append(step.name, factsOf(s), passed);
      if (step.name === commitPoint) passed = true;
    },
    committed() {
      journal.remove();
    },
    undone() {
      journal.remove();
    },
    kept() {
      journal.remove();
    },
  };
}
