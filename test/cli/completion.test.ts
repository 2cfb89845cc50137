// Shell completion through the real shells: what a user gets after <Tab>, including the generated per-service targets.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const repo = path.resolve(import.meta.dirname, '../..');
let dir = '';
let bin = '';

function sh(argv: string[], input?: string) {
  const r = spawnSync(argv[0]!, argv.slice(1), {
    cwd: dir,
    env: { PATH: `${bin}:${process.env.PATH}`, HOME: dir, COMPOSE_PROJECT_NAME: 'completion', POSTGRES_PASSWORD: 'pw-completion' },
    input,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const has = (shell: string) => spawnSync('sh', ['-c', `command -v ${shell}`], { stdio: 'ignore' }).status === 0;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'completion-'));
  for (const f of ['tasks.ts', 'package.json', 'tsconfig.json', '.env.template', 'bin', 'scripts', 'compose', 'addons', 'seeds']) {
    if (fs.existsSync(path.join(repo, f))) fs.cpSync(path.join(repo, f), path.join(dir, f), { recursive: true });
  }
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
  // `tasks` on PATH, as after `npm link` / `npm install -g`.
  bin = path.join(dir, '.bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'tasks'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(dir, 'bin/tasks.mjs')}" "$@"\n`, {
    mode: 0o755,
  });
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('tasks completion', () => {
  it('__complete prints every task name, the generated service targets included', () => {
    const r = sh(['tasks', '__complete']);
    expect(r.code).toBe(0);
    const words = r.stdout.trim().split('\n');
    for (const w of ['dev', 'doctor', 'setup', 'shell-odoo', 'odoo-restart', 'logs-db', 'db-rebuild', 'ps', 'help'])
      expect(words).toContain(w);
    expect(words).not.toContain('__complete');
  });

  it("bash: <Tab> after `tasks odoo-` offers the odoo service targets, and a task's flags after `-`", () => {
    const script = sh(['tasks', 'completion', 'bash']);
    expect(script.code).toBe(0);
    fs.writeFileSync(path.join(dir, 'c.bash'), script.stdout);
    const tab = (line: string) => {
      const r = sh([
        'bash',
        '-c',
        `source c.bash; COMP_WORDS=(${line}); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); _tasks_complete; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ]);
      expect(r.stderr).toBe('');
      return r.stdout.trim().split('\n').sort();
    };
    expect(tab('tasks odoo-')).toEqual(['odoo-rebuild', 'odoo-restart', 'odoo-shell', 'odoo-stop']);
    expect(tab('tasks shell-')).toEqual(['shell-adminer', 'shell-db', 'shell-odoo']);
    expect(tab('tasks help shell-o')).toEqual(['shell-odoo']);
    expect(tab('tasks logs-odoo --f')).toEqual(['--follow']);
    expect(tab('tasks doctor --j')).toEqual(['--json']);
  });

  it('bash and zsh: also when `tasks` is an alias of ./bin/tasks.mjs (not on PATH)', () => {
    fs.writeFileSync(path.join(dir, 'c.bash'), sh(['tasks', 'completion', 'bash']).stdout);
    fs.writeFileSync(path.join(dir, 'c.zsh'), sh(['tasks', 'completion', 'zsh']).stdout);
    const env = { PATH: process.env.PATH!, HOME: dir };
    const alias = `alias tasks="${process.execPath} ${path.join(dir, 'bin/tasks.mjs')}"`;
    const bash = spawnSync(
      'bash',
      [
        '-c',
        `shopt -s expand_aliases\n${alias}\nsource c.bash\n` +
          `COMP_WORDS=(tasks shell-o); COMP_CWORD=1; _tasks_complete; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      { cwd: dir, env, encoding: 'utf8' },
    );
    expect(bash.stdout.trim()).toBe('shell-odoo');
    if (!has('zsh')) throw new Error('zsh is needed for this test: apt-get install zsh');
    const zsh = spawnSync(
      'zsh',
      [
        '-f',
        '-c',
        [
          alias,
          'autoload -Uz compinit && compinit -u -D',
          'source c.zsh',
          'compadd() { [[ $1 == -a ]] && print -l ${(P)2} }',
          'words=(tasks odoo-re); CURRENT=2; PREFIX=odoo-re',
          '_tasks_complete | grep "^odoo-re"',
        ].join('\n'),
      ],
      { cwd: dir, env, encoding: 'utf8' },
    );
    expect(zsh.stdout.trim().split('\n').sort()).toEqual(['odoo-rebuild', 'odoo-restart']);
  });

  it('fish: `complete -C` offers the service targets', () => {
    const script = sh(['tasks', 'completion', 'fish']);
    expect(script.code).toBe(0);
    expect(script.stdout).toContain('__complete');
    if (!has('fish')) throw new Error('fish is needed for this test: apt-get install fish');
    fs.writeFileSync(path.join(dir, 'c.fish'), script.stdout);
    const r = sh(['fish', '--no-config', '-c', 'source c.fish; complete -C "tasks odoo-re"']);
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t')[0])
        .sort(),
    ).toEqual(['odoo-rebuild', 'odoo-restart']);
  });

  it('zsh: the script loads under compinit and, asked for `tasks shell-`, offers the service targets', () => {
    const script = sh(['tasks', 'completion', 'zsh']);
    expect(script.code).toBe(0);
    expect(script.stdout.startsWith('#compdef tasks')).toBe(true);
    if (!has('zsh')) throw new Error('zsh is needed for this test: apt-get install zsh');
    fs.writeFileSync(path.join(dir, 'c.zsh'), script.stdout);
    // Run the completion function with compadd replaced by a printer (compadd only works inside the line editor).
    const r = sh([
      'zsh',
      '-f',
      '-c',
      [
        'autoload -Uz compinit && compinit -u -D',
        'source c.zsh',
        'compadd() { [[ $1 == -a ]] && print -l ${(P)2} }',
        'words=(tasks shell-); CURRENT=2; PREFIX=shell-',
        '_tasks_complete | grep "^shell-"',
      ].join('\n'),
    ]);
    expect(r.stdout.trim().split('\n').sort()).toEqual(['shell-adminer', 'shell-db', 'shell-odoo']);
  });

  it('refuses an unknown shell with exit 2', () => {
    const r = sh(['tasks', 'completion', 'powershell']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown shell "powershell": use one of bash, zsh, fish');
  });
});
