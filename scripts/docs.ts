// Generates the task lists in README.md and docs/reference.md from the registry, and docs/environment.md from .env.template:
// `npx tsx scripts/docs.ts` rewrites, `--check` exits 1 when stale.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { GROUPS, type AnyTask, type ArgSpec, type OptionSpec } from './core/define.ts';
import type { ServiceInfo } from './tools/compose.ts';

export const BEGIN = '<!-- tasks:begin -->';
export const END = '<!-- tasks:end -->';
export const ENV_BEGIN = '<!-- env:begin -->';
export const ENV_END = '<!-- env:end -->';

/** Service names of the shipped compose files (every file compose/compose*.yaml), without running compose. */
export async function shippedServices(root: string): Promise<string[]> {
  const { YAML } = await import('zx');
  const dir = path.join(root, 'compose');
  const names = new Set<string>();
  for (const f of fs
    .readdirSync(dir)
    .filter((x) => /^compose.*\.ya?ml$/.test(x))
    .sort()) {
    const doc = YAML.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { services?: Record<string, unknown> } | null;
    for (const s of Object.keys(doc?.services ?? {})) names.add(s);
  }
  return [...names];
}

/**
 * Pads every markdown table in `md` to aligned columns (the layout the docs are kept in: `| a   | b |`, `| --- | --- |`),
 * so the generated blocks read well as plain text. Widths count code points; escaped pipes stay inside their cell.
 */
export function alignTables(md: string): string {
  const lines = md.split('\n');
  const out: string[] = [];
  const cells = (l: string) =>
    l
      .trim()
      .replace(/^\|/, '')
      .replace(/\|$/, '')
      .split(/(?<!\\)\|/)
      .map((c) => c.trim());
  for (let i = 0; i < lines.length; ) {
    if (!/^\s*\|/.test(lines[i]!) || !/^\s*\|[\s|:-]+\|\s*$/.test(lines[i + 1] ?? '')) {
      out.push(lines[i++]!);
      continue;
    }
    const rows: string[][] = [];
    const start = i;
    while (i < lines.length && /^\s*\|/.test(lines[i]!)) rows.push(cells(lines[i++]!));
    const n = Math.max(...rows.map((r) => r.length));
    const len = (s: string) => [...s].length;
    const width = Array.from({ length: n }, (_, c) => Math.max(3, ...rows.filter((_, r) => r !== 1).map((r) => len(r[c] ?? ''))));
    rows.forEach((r, k) => {
      const row = width.map((w, c) => (k === 1 ? '-'.repeat(w) : (r[c] ?? '') + ' '.repeat(w - len(r[c] ?? ''))));
      out.push(`| ${row.join(' | ')} |`);
    });
    if (i === start) i++;
  }
  return out.join('\n');
}

const flagName = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** `<file>`, `[services...]`, `--force`, `--tail <n>` … as a user types them. */
export function usageOf(t: AnyTask): string {
  const args = Object.entries((t.args ?? {}) as Record<string, ArgSpec>).map(([n, a]) =>
    a.required ? `<${n}${a.variadic ? '...' : ''}>` : `[${n}${a.variadic ? '...' : ''}]`,
  );
  const opts = Object.entries((t.options ?? {}) as Record<string, OptionSpec>).map(
    ([n, o]) => `[${flagName(n)}${o.type === 'string' ? ` <${o.placeholder ?? 'value'}>` : ''}]`,
  );
  return [...args, ...opts].join(' ');
}

/** The README block: the task names by group, one line each (the full table is docs/reference.md's). */
export function renderReadme(tasks: AnyTask[], services: string[]): string {
  const lines: string[] = [];
  for (const g of GROUPS) {
    if (g === 'services') {
      lines.push(
        `- **services** (for every service in the compose files; shipped: ${services.map((s) => `\`${s}\``).join(', ')}): ` +
          SERVICE_PATTERNS.map((p) => `\`${p}\``).join(', '),
      );
      continue;
    }
    const inGroup = tasks.filter((t) => !t.hidden && t.group === g);
    if (inGroup.length) lines.push(`- **${g}**: ${inGroup.map((t) => `\`${t.name}\``).join(', ')}`);
  }
  return lines.join('\n');
}

/** The targets generated for each service, as the README names them. */
const SERVICE_PATTERNS = ['shell-<service>', 'logs-<service>', '<service>-restart', '<service>-rebuild', '<service>-stop'];

/** docs/reference.md's block: every task including each generated service target, with its usage and example. */
export function renderReference(tasks: AnyTask[]): string {
  const lines = ['| Task | Group | Usage | What it does | Example |', '|---|---|---|---|---|'];
  for (const g of GROUPS) {
    for (const t of tasks.filter((x) => !x.hidden && x.group === g)) {
      const u = usageOf(t);
      const names = [t.name, ...(t.aliases ?? [])].map((n) => `\`${n}\``).join(', ');
      lines.push(
        `| ${names} | ${g} | ${u ? `\`${cell(u)}\`` : ''} | ${cell(t.description)} | ${t.example ? `\`${cell(t.example)}\`` : ''} |`,
      );
    }
  }
  return alignTables(lines.join('\n'));
}

export function replaceBlock(text: string, block: string, file: string, begin = BEGIN, end = END): string {
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file}: markers ${begin} … ${end} not found`);
  return `${text.slice(0, a + begin.length)}\n${block}\n${text.slice(b)}`;
}

/** Readers outside this repository's code: the tools the tasks hand the environment to. */
const EXTERNAL_READERS: Record<string, string> = {
  COMPOSE_PROJECT_NAME: 'docker compose',
  COMPOSE_FILE: 'docker compose',
  COMPOSE_PROFILES: 'docker compose',
  AWS_ACCESS_KEY_ID: 'the aws CLI',
  AWS_SECRET_ACCESS_KEY: 'the aws CLI',
  AWS_PROFILE: 'the aws CLI',
};

/** Files that name a key (as a whole word): every .ts under scripts/, tasks.ts and the compose files, relative to the root. */
export function readersOf(root: string, key: string): string[] {
  const files = [
    ...fs
      .readdirSync(path.join(root, 'scripts'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && f !== 'docs.ts')
      .sort()
      .map((f) => `scripts/${f}`),
    'tasks.ts',
    ...fs
      .readdirSync(path.join(root, 'compose'))
      .filter((f) => /^compose.*\.ya?ml$/.test(f))
      .sort()
      .map((f) => `compose/${f}`),
  ];
  const re = new RegExp(`(?<![A-Za-z0-9_])${key}(?![A-Za-z0-9_])`);
  return files.filter((f) => re.test(fs.readFileSync(path.join(root, f), 'utf8')));
}

/** docs/environment.md's block: every key of .env.template with its default, annotations, comment and readers. */
export async function renderEnvironment(root: string): Promise<string> {
  const { parseTemplate } = await import('./core/env.ts');
  const keys = parseTemplate(fs.readFileSync(path.join(root, '.env.template'), 'utf8'));
  const lines = ['| Key | Default | Annotations | What it is | Read by |', '|---|---|---|---|---|'];
  for (const k of keys) {
    const notes = [
      k.secret ? '@secret' : k.required ? '@required' : '',
      k.enumValues ? `@enum ${k.enumValues.join(' ')}` : '',
      k.type ? `@${k.type}` : '',
    ].filter(Boolean);
    const readers = [...readersOf(root, k.key).map((f) => `\`${f}\``), ...(EXTERNAL_READERS[k.key] ? [EXTERNAL_READERS[k.key]!] : [])];
    lines.push(
      `| \`${k.key}\` | ${k.default ? `\`${cell(k.default)}\`` : k.secret ? '(generated by env-init)' : '(empty)'} | ` +
        `${notes.join(', ')} | ${cell(k.comment)} | ${readers.join(', ')} |`,
    );
  }
  return alignTables(lines.join('\n'));
}

/** Every static task plus the targets generated for the shipped services. */
export async function registry(root: string): Promise<{ tasks: AnyTask[]; all: AnyTask[]; services: string[] }> {
  const { tasks } = (await import(pathToFileURL(path.join(root, 'tasks.ts')).href)) as { tasks: AnyTask[] };
  const { serviceTasks } = await import('./tasks/stack.ts');
  const services = await shippedServices(root);
  const generated = serviceTasks(services.map((name): ServiceInfo => ({ name, build: false, profiles: [], ports: [], healthcheck: true })));
  return { tasks, all: [...tasks, ...generated.filter((g) => !tasks.some((t) => t.name === g.name))], services };
}

/** Files and their expected text; `stale` lists the ones that differ. */
export async function expectedDocs(root: string): Promise<Array<{ file: string; current: string; expected: string }>> {
  const { tasks, all, services } = await registry(root);
  return [
    { file: 'README.md', block: renderReadme(tasks, services) },
    { file: 'docs/reference.md', block: renderReference(all) },
    { file: 'docs/environment.md', block: await renderEnvironment(root), begin: ENV_BEGIN, end: ENV_END },
  ].map(({ file, block, begin, end }) => {
    const current = fs.readFileSync(path.join(root, file), 'utf8');
    return { file, current, expected: replaceBlock(current, block, file, begin, end) };
  });
}

const entry = process.argv[1] ? fs.realpathSync(process.argv[1]) : '';
if (import.meta.url === pathToFileURL(entry).href) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const check = process.argv.includes('--check');
  const stale: string[] = [];
  for (const d of await expectedDocs(root)) {
    if (d.current === d.expected) continue;
    stale.push(d.file);
    if (!check) fs.writeFileSync(path.join(root, d.file), d.expected);
  }
  if (check && stale.length) {
    process.stderr.write(`generated docs out of date in ${stale.join(', ')}: run npx tsx scripts/docs.ts\n`);
    process.exitCode = 1;
  } else process.stdout.write(stale.length ? `updated ${stale.join(', ')}\n` : 'generated docs up to date\n');
}
