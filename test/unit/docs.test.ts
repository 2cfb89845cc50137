// The docs stay true: the generated blocks are current, every task a doc names exists, and workflow.md's example task runs.
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { YAML } from 'zx';
import { expectedDocs } from '../../scripts/docs.ts';
import { parseTemplate } from '../../scripts/core/env.ts';
import { serviceTasks } from '../../scripts/tasks/stack.ts';
import { tasks } from '../../tasks.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const docFiles = [
  'README.md',
  ...fs
    .readdirSync(path.join(repo, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** Task names: the static registry plus the targets generated for every service of the shipped compose files. */
function knownNames(): Set<string> {
  const services = new Set<string>();
  // The shipped compose files, and the examples' (docs/workflow.md runs examples/web-api's targets).
  const dirs = ['compose', ...fs.readdirSync(path.join(repo, 'examples')).map((e) => path.join('examples', e, 'compose'))];
  for (const dir of dirs.filter((d) => fs.existsSync(path.join(repo, d)))) {
    for (const f of fs.readdirSync(path.join(repo, dir)).filter((x) => /^compose.*\.ya?ml$/.test(x))) {
      const doc = YAML.parse(fs.readFileSync(path.join(repo, dir, f), 'utf8')) as { services?: Record<string, unknown> };
      for (const s of Object.keys(doc.services ?? {})) services.add(s);
    }
  }
  const generated = serviceTasks([...services].map((name) => ({ name, build: false, profiles: [], ports: [], healthcheck: true })));
  return new Set([...tasks, ...generated].flatMap((t) => [t.name, ...(t.aliases ?? [])]).concat(['help']));
}

/** Code in a markdown file: fenced blocks and inline `spans` (prose may say "tasks" freely). */
function codeOf(md: string): string[] {
  const out: string[] = [];
  const rest = md.replace(/```[^\n]*\n([\s\S]*?)```/g, (_, body: string) => {
    out.push(body);
    return '';
  });
  for (const m of rest.matchAll(/`([^`\n]+)`/g)) out.push(m[1]!);
  return out;
}

/** `tasks <name>`, `npx tsx tasks.ts <name>`, `npm run tasks -- <name>`, `bin/tasks.mjs <name>`; also `tasks help <name>`. */
function mentionedTasks(md: string): string[] {
  const names: string[] = [];
  const re = new RegExp(
    [
      /(?:^|[\s;(|&$'"])(?:npx tsx tasks\.ts|npm run tasks --|(?:\S*\/)?bin\/tasks\.mjs|tasks)\s+/,
      /(?:(?:-[-\w]+(?:\s+(?:development|staging|production))?)\s+)*(help\s+)?([a-z][\w-]*)(?![\w<>-])/,
    ]
      .map((r) => r.source)
      .join(''),
    'g',
  );
  for (const code of codeOf(md)) {
    for (const m of code.matchAll(re)) {
      names.push(m[2]!);
    }
  }
  return names;
}

describe('docs', () => {
  it('the generated blocks of README.md, docs/reference.md and docs/environment.md are current (npx tsx scripts/docs.ts)', async () => {
    for (const d of await expectedDocs(repo)) expect(d.current, `${d.file} is stale: run npx tsx scripts/docs.ts`).toBe(d.expected);
  });

  it('docs/environment.md has a row for every key of .env.template, with its default', () => {
    const md = fs.readFileSync(path.join(repo, 'docs/environment.md'), 'utf8');
    const keys = parseTemplate(fs.readFileSync(path.join(repo, '.env.template'), 'utf8'));
    expect(keys.length).toBeGreaterThan(30);
    for (const k of keys) {
      const row = md.split('\n').find((l) => l.startsWith(`| \`${k.key}\` `));
      expect(row, `docs/environment.md: no row for ${k.key}`).toBeTruthy();
      if (k.default) expect(row).toContain(`\`${k.default}\``);
    }
  });

  it('every task named in README.md and docs/**/*.md exists in the registry', () => {
    const known = knownNames();
    const unknown: string[] = [];
    let count = 0;
    for (const f of docFiles) {
      const md = fs.readFileSync(path.join(repo, f), 'utf8');
      // A task the doc itself defines in an example (defineTask({ name: 'db-size', … })) counts for that doc.
      const own = new Set(codeOf(md).flatMap((c) => [...c.matchAll(/\bname: '([\w-]+)'/g)].map((m) => m[1]!)));
      for (const name of mentionedTasks(md)) {
        count++;
        if (!known.has(name) && !own.has(name)) unknown.push(`${f}: tasks ${name}`);
      }
    }
    expect(unknown).toEqual([]);
    expect(count).toBeGreaterThan(50);
  });

  it('finds task mentions in every form the docs use, and only in code', () => {
    const md =
      'Prose about tasks that run. `tasks dev`, `npx tsx tasks.ts setup --env production`, `npm run tasks -- backup`, ' +
      '`./bin/tasks.mjs --env staging doctor`, `tasks help restore`\n' +
      '```sh\ntasks -n reset-db --yes\n0 2 * * * flock -n x /usr/bin/node /srv/app/bin/tasks.mjs backup\n```\n';
    expect(mentionedTasks(md)).toEqual(['reset-db', 'backup', 'dev', 'setup', 'backup', 'doctor', 'restore']);
    expect(mentionedTasks('`tasks nosuchtask`')).toEqual(['nosuchtask']);
    expect(mentionedTasks('`tasks shell-<service>`, `tasks <service>-restart`, `tasks help <task>`')).toEqual(['help']);
  });

  it('the example task of docs/workflow.md really works: listed, explained, and its command printed in dry-run', () => {
    const workflow = fs.readFileSync(path.join(repo, 'docs/workflow.md'), 'utf8');
    const snippet = /```ts\n(defineTask\(\{\n {2}name: 'db-size'[\s\S]*?)```/.exec(workflow)?.[1];
    expect(snippet, 'docs/workflow.md: the ```ts block with the db-size example').toBeTruthy();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-task-'));
    try {
      for (const f of ['tasks.ts', 'package.json', 'tsconfig.json', '.env.template', 'bin', 'scripts', 'compose', 'addons', 'seeds'])
        fs.cpSync(path.join(repo, f), path.join(dir, f), { recursive: true });
      fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
      const src = fs.readFileSync(path.join(dir, 'tasks.ts'), 'utf8');
      const anchor = 'const myTasks: AnyTask[] = [\n';
      expect(src).toContain(anchor);
      fs.writeFileSync(path.join(dir, 'tasks.ts'), src.replace(anchor, `${anchor}${snippet!.replace(/^/gm, '  ')}`));
      const run = (args: string[]) =>
        spawnSync(process.execPath, [path.join(dir, 'bin/tasks.mjs'), ...args], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 60_000,
          env: {
            PATH: process.env.PATH,
            HOME: dir,
            COMPOSE_PROJECT_NAME: 'readme',
            POSTGRES_PASSWORD: 'pw-readme-1234',
            COMPOSE_CMD: 'docker-compose',
          },
        });
      const list = run(['--list']);
      expect(list.stdout).toMatch(/\n {2}db-size +Size of the application database\n/);
      expect(run(['help', 'db-size']).stdout).toContain('--raw');
      const dry = run(['db-size', '--raw', '--dry-run']);
      expect(dry.stderr).toMatch(
        new RegExp(
          [
            /\[dry-run\] \$ docker-compose --project-directory \S+ -f compose\/compose\.yaml -f compose\/compose\.dev\.yaml/,
            / exec -T db psql -U odoo -d odoo -tAc 'select pg_database_size\(current_database\(\)\)'/,
          ]
            .map((r) => r.source)
            .join(''),
        ),
      );
      expect(dry.status).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
