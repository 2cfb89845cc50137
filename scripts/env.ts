// Environment loading: layered .env files (Vite/Next order), ${VAR} expansion, validation against .env.template, env-init.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import dotenv from 'dotenv';
import { expand } from 'dotenv-expand';
import { ExitCode, TaskError } from './errors.ts';

export const APP_ENVS = ['development', 'staging', 'production'] as const;
export type AppEnv = (typeof APP_ENVS)[number];

export interface LoadedEnv {
  appEnv: AppEnv;
  /** Real environment + env files + template defaults, expanded; what every child process sees. */
  values: Record<string, string>;
  /** Files that were read, highest precedence first. */
  files: string[];
  /** The file a user should edit to fix a key for this APP_ENV. */
  fileToFix: string;
  get(key: string): string | undefined;
  /** Like get, but throws a one-line error naming the key and the file when it is empty. */
  require(key: string): string;
}

export interface TemplateKey {
  key: string;
  default: string;
  comment: string;
  required: boolean;
  secret: boolean;
  enumValues?: string[];
  type?: 'int' | 'url' | 'bool';
}

/** Parses .env.template: `# comment` lines then `KEY=default`; annotations @required @secret @enum a b @int @url @bool. */
export function parseTemplate(text: string): TemplateKey[] {
  const keys: TemplateKey[] = [];
  let comments: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) {
      comments = [];
      continue;
    }
    if (line.startsWith('#')) {
      comments.push(line.replace(/^#\s?/, ''));
      continue;
    }
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!;
    const parsed = dotenv.parse(`${key}=${m[2]}`);
    const notes = comments.join(' ');
    const enumMatch = /@enum\s+([\w|. -]+?)(?=\s*@|$)/.exec(notes);
    const t: TemplateKey = {
      key,
      default: parsed[key] ?? '',
      comment: comments
        .filter((c) => !c.startsWith('@'))
        .join(' ')
        .replace(/@\w+(\s+[\w|. -]+)?/g, '')
        .trim(),
      required: /@required\b/.test(notes) || /@secret\b/.test(notes),
      secret: /@secret\b/.test(notes),
    };
    if (enumMatch) t.enumValues = enumMatch[1]!.split(/[\s|]+/).filter(Boolean);
    if (/@int\b/.test(notes)) t.type = 'int';
    if (/@url\b/.test(notes)) t.type = 'url';
    if (/@bool\b/.test(notes)) t.type = 'bool';
    keys.push(t);
    comments = [];
  }
  return keys;
}

export function readTemplate(root: string): TemplateKey[] {
  const file = path.join(root, '.env.template');
  if (!fs.existsSync(file)) return [];
  return parseTemplate(fs.readFileSync(file, 'utf8'));
}

/** Files in precedence order, highest first (the first one that sets a key wins). */
export function envFiles(appEnv: string): string[] {
  return [`.env.${appEnv}.local`, `.env.${appEnv}`, '.env.local', '.env'];
}

function readEnvFile(file: string): Record<string, string> | undefined {
  try {
    return dotenv.parse(fs.readFileSync(file));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TaskError(`cannot read ${file}: ${(err as Error).message}`, { exitCode: ExitCode.invalidEnv });
  }
}

export interface LoadOptions {
  root: string;
  /** The real environment (process.env), which always wins. */
  processEnv: Readonly<Record<string, string | undefined>>;
  /** --env <name> */
  appEnv?: string;
}

export function loadEnv(opts: LoadOptions): LoadedEnv {
  const real: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.processEnv)) if (v !== undefined) real[k] = v;
  const base = readEnvFile(path.join(opts.root, '.env')) ?? {};
  const local = readEnvFile(path.join(opts.root, '.env.local')) ?? {};
  const appEnv = opts.appEnv ?? real.APP_ENV ?? local.APP_ENV ?? base.APP_ENV ?? 'development';
  if (!(APP_ENVS as readonly string[]).includes(appEnv)) {
    throw new TaskError(`APP_ENV must be one of ${APP_ENVS.join(', ')}, not "${appEnv}"`, {
      exitCode: ExitCode.invalidEnv,
      hint: 'fix --env or APP_ENV in .env',
    });
  }
  const files: string[] = [];
  const merged: Record<string, string> = {};
  for (const t of readTemplate(opts.root)) if (t.default !== '' && !t.secret) merged[t.key] = t.default;
  for (const name of [...envFiles(appEnv)].reverse()) {
    const values =
      name === '.env'
        ? fs.existsSync(path.join(opts.root, '.env'))
          ? base
          : undefined
        : name === '.env.local'
          ? fs.existsSync(path.join(opts.root, '.env.local'))
            ? local
            : undefined
          : readEnvFile(path.join(opts.root, name));
    if (!values) continue;
    files.unshift(name);
    Object.assign(merged, values);
  }
  merged.APP_ENV = appEnv;
  const processEnv = { ...real };
  if (opts.appEnv) processEnv.APP_ENV = opts.appEnv;
  expand({ parsed: merged, processEnv });
  const values = { ...real, ...merged };
  values.APP_ENV = appEnv;
  const fileToFix = files.includes(`.env.${appEnv}`) ? `.env.${appEnv}` : '.env';
  return {
    appEnv: appEnv as AppEnv,
    values,
    files,
    fileToFix,
    get: (k) => (values[k] === undefined || values[k] === '' ? undefined : values[k]),
    require(k) {
      const v = values[k];
      if (v === undefined || v === '')
        throw new TaskError(`${k} is not set`, {
          exitCode: ExitCode.invalidEnv,
          hint: `set ${k} in ${fileToFix} (documented in .env.template)`,
        });
      return v;
    },
  };
}

export interface EnvProblem {
  key: string;
  problem: string;
}

/**
 * Validates the loaded values against the template; returns every problem at once. With `cacheDir`, a set of rules
 * and values that passed before is not checked again: loading zod costs 50-80 ms, paid by every command otherwise.
 * The stamp is a sha256 of the rules and values (never the values themselves) in a folder only the owner can read,
 * as protected as .env itself.
 */
export async function validateEnv(env: LoadedEnv, template: TemplateKey[], o: { cacheDir?: string } = {}): Promise<EnvProblem[]> {
  const checked = template.filter((t) => t.required || t.enumValues || t.type);
  const stampDir = o.cacheDir && path.join(o.cacheDir, 'env-ok');
  const stamp =
    stampDir &&
    path.join(
      stampDir,
      crypto
        .createHash('sha256')
        .update(JSON.stringify(checked.map((t) => [t.key, t.required, t.enumValues ?? null, t.type ?? null, env.values[t.key] ?? ''])))
        .digest('hex'),
    );
  if (stamp && fs.existsSync(stamp)) return [];
  const problems = await checkEnvValues(env, checked);
  if (stamp && !problems.length) {
    try {
      fs.mkdirSync(stampDir, { recursive: true, mode: 0o700 });
      for (const f of fs.readdirSync(stampDir)) fs.rmSync(path.join(stampDir, f), { force: true });
      fs.writeFileSync(stamp, '', { mode: 0o600 });
    } catch {
      /* no cache: checked again next time */
    }
  }
  return problems;
}

async function checkEnvValues(env: LoadedEnv, template: TemplateKey[]): Promise<EnvProblem[]> {
  const { z } = await import('zod');
  const problems: EnvProblem[] = [];
  for (const t of template) {
    const v = env.values[t.key];
    if (v === undefined || v === '') {
      if (t.required) problems.push({ key: t.key, problem: 'is missing' });
      continue;
    }
    let schema: import('zod').ZodType = z.string();
    if (t.enumValues) schema = z.enum(t.enumValues as [string, ...string[]]);
    else if (t.type === 'int') schema = z.string().regex(/^\d+$/, 'must be a whole number');
    else if (t.type === 'url') schema = z.string().url('must be a URL');
    else if (t.type === 'bool') schema = z.enum(['true', 'false', '1', '0', 'yes', 'no']);
    const r = schema.safeParse(v);
    if (!r.success) {
      const msg = t.enumValues ? `must be one of ${t.enumValues.join(', ')} (is "${v}")` : (r.error.issues[0]?.message ?? 'is invalid');
      problems.push({ key: t.key, problem: msg });
    }
  }
  return problems;
}

export function envProblemsError(env: LoadedEnv, problems: EnvProblem[]): TaskError {
  const list = problems.map((p) => `${p.key} ${p.problem}`).join('; ');
  return new TaskError(`invalid environment (${env.appEnv}): ${list}`, {
    exitCode: ExitCode.invalidEnv,
    hint:
      fs.existsSync(env.fileToFix) || env.files.length
        ? `fix ${env.fileToFix} (every key is documented in .env.template)`
        : 'no .env yet: run `tasks env-init` (or `tasks dev` in development)',
  });
}

/** A strong random secret: 32 bytes, URL-safe, no characters that need quoting in .env or URLs. */
export function generateSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** Renders .env from the template, generating secrets; comments kept so the file explains itself. */
export function renderEnvFromTemplate(templateText: string, overrides: Record<string, string> = {}): string {
  const keys = new Map(parseTemplate(templateText).map((k) => [k.key, k]));
  const out: string[] = [];
  for (const raw of templateText.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(raw);
    const t = m ? keys.get(m[1]!) : undefined;
    if (!t) {
      out.push(raw);
      continue;
    }
    const value = overrides[t.key] ?? (t.secret && !t.default ? generateSecret() : t.default);
    out.push(`${t.key}=${/[\s#"'$]/.test(value) ? JSON.stringify(value) : value}`);
  }
  return out.join('\n');
}

/** Writes .env (mode 0600) from the template; refuses to overwrite an existing file. */
export function initEnvFile(root: string, overrides: Record<string, string> = {}, target = '.env'): string {
  const tpl = path.join(root, '.env.template');
  if (!fs.existsSync(tpl))
    throw new TaskError('.env.template is missing', {
      exitCode: ExitCode.invalidEnv,
      hint: 'restore it from git: git checkout .env.template',
    });
  const file = path.join(root, target);
  const text = renderEnvFromTemplate(fs.readFileSync(tpl, 'utf8'), overrides);
  try {
    fs.writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new TaskError(`${target} already exists; not overwriting it`, {
        exitCode: ExitCode.refused,
        hint: `move it away first if you really want a new one: mv ${target} ${target}.old`,
      });
    }
    throw err;
  }
  fs.chmodSync(file, 0o600);
  return file;
}

/** Env files that other users can read (they hold passwords). */
export function worldReadableEnvFiles(root: string, files: string[]): string[] {
  return files.filter((f) => {
    try {
      return (fs.statSync(path.join(root, f)).mode & 0o004) !== 0;
    } catch {
      return false;
    }
  });
}
