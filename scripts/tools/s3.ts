// S3 / R2 through the aws CLI: settings from the env, pure argv builders (cp, put-object, ls, rm, head-object), and upload
// with retries and a check of what arrived.
import { CommandError, ExitCode, TaskError } from '../core/errors.ts';
import type { Cmd, Result, Runner } from '../core/runner.ts';

export interface S3Settings {
  bucket: string;
  /** Key prefix, e.g. "odoo/" (kept as written). */
  prefix: string;
  /** R2 / MinIO endpoint; unset for AWS. */
  endpoint?: string;
  region?: string;
  profile?: string;
  /** Progress output only in a terminal; `--only-show-errors` otherwise (cron logs). */
  terminal: boolean;
  /** S3_SINGLE_PUT_MAX: bigger archives go up multipart (default SINGLE_PUT_MAX). */
  singlePutMax?: number;
  /** S3_TIMEOUT: seconds aws waits to connect and for each read (--cli-connect-timeout / --cli-read-timeout). */
  timeoutSec?: number;
}

/** A whole number ≥ 1 from a setting, or undefined when empty; anything else is refused naming the key. */
function positive(get: Get, key: string): number | undefined {
  const v = get(key)?.trim();
  if (!v) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new TaskError(`${key} must be a whole number ≥ 1, not "${v}"`, { exitCode: ExitCode.invalidEnv, hint: `fix ${key} in .env` });
  return n;
}

type Get = (key: string) => string | undefined;

/** The S3 settings from the environment, or undefined when no bucket is configured (backups stay local). */
export function s3Settings(get: Get, terminal: boolean): S3Settings | undefined {
  const bucket = get('S3_BUCKET');
  if (!bucket) return undefined;
  return {
    bucket: bucket.replace(/^s3:\/\//, '').replace(/\/+$/, ''),
    prefix: get('S3_PREFIX') ?? '',
    endpoint: get('S3_ENDPOINT'),
    region: get('S3_REGION'),
    profile: get('AWS_PROFILE'),
    terminal,
    singlePutMax: positive(get, 'S3_SINGLE_PUT_MAX'),
    timeoutSec: positive(get, 'S3_TIMEOUT'),
  };
}

/** What is missing for an upload to work, or undefined. Credentials come from the AWS keys, a profile, or the usual aws config files. */
export function missingCredentials(get: Get, home: string | undefined, exists: (p: string) => boolean): string | undefined {
  if (get('AWS_ACCESS_KEY_ID') && get('AWS_SECRET_ACCESS_KEY')) return undefined;
  if (get('AWS_ACCESS_KEY_ID') && !get('AWS_SECRET_ACCESS_KEY')) return 'AWS_SECRET_ACCESS_KEY is not set (AWS_ACCESS_KEY_ID is)';
  if (get('AWS_PROFILE')) return undefined;
  if (
    get('AWS_SHARED_CREDENTIALS_FILE') ||
    get('AWS_CONTAINER_CREDENTIALS_FULL_URI') ||
    get('AWS_CONTAINER_CREDENTIALS_RELATIVE_URI') ||
    get('AWS_WEB_IDENTITY_TOKEN_FILE')
  )
    return undefined;
  if (home && exists(`${home}/.aws/credentials`)) return undefined;
  return 'no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE';
}

export const objectKey = (s: S3Settings, name: string) => `${s.prefix}${name}.tar.gz`;
export const s3Url = (s: S3Settings, key: string) => `s3://${s.bucket}/${key}`;

/** Options before the aws subcommand: endpoint and region. */
function globalArgs(s: S3Settings): string[] {
  return [
    ...(s.endpoint ? ['--endpoint-url', s.endpoint] : []),
    ...(s.region ? ['--region', s.region] : []),
    ...(s.timeoutSec ? ['--cli-connect-timeout', String(s.timeoutSec), '--cli-read-timeout', String(s.timeoutSec)] : []),
  ];
}

/** Attempts aws makes per request (its own retries, AWS_RETRY_MODE=standard) unless AWS_MAX_ATTEMPTS says otherwise. */
export const AWS_ATTEMPTS = 3;

/**
 * The environment every aws call gets on top of the task's own (backup, restore, doctor, storage-*: this is the only
 * rule). Credentials stay there (never on argv); empty AWS_* variables are removed (an empty AWS_PROFILE makes aws
 * look for a profile named ""); retries are aws's own and bounded (AWS_RETRY_MODE=standard, AWS_MAX_ATTEMPTS=3:
 * 500s, 503 SlowDown, throttling and dropped connections are retried with backoff, then aws fails); with a custom
 * endpoint (R2, MinIO) checksums only when required: aws-cli ≥ 2.23 otherwise sends CRC checksums R2 rejects. A value
 * the user set (in the environment or .env) wins, except `attempts` (doctor wants a quick answer).
 */
export function awsEnv(
  where: { endpoint?: string },
  env: Readonly<Record<string, string | undefined>>,
  o: { attempts?: number } = {},
): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('AWS_') && v === '') out[k] = undefined;
  const byDefault = (k: string, v: string) => {
    if (!env[k]) out[k] = v;
  };
  byDefault('AWS_RETRY_MODE', 'standard');
  if (o.attempts) out.AWS_MAX_ATTEMPTS = String(o.attempts);
  else byDefault('AWS_MAX_ATTEMPTS', String(AWS_ATTEMPTS));
  if (where.endpoint) {
    byDefault('AWS_REQUEST_CHECKSUM_CALCULATION', 'when_required');
    byDefault('AWS_RESPONSE_CHECKSUM_VALIDATION', 'when_required');
  }
  return out;
}

const quietFlags = (s: S3Settings) => (s.terminal ? ['--no-progress'] : ['--no-progress', '--only-show-errors']);

/** Pure argv builders; nothing runs. */
export const s3 = {
  /** Upload or download one file (aws uses multipart for big files: the object exists only once complete). */
  cp: (s: S3Settings, from: string, to: string) => ['aws', ...globalArgs(s), 's3', 'cp', from, to, ...quietFlags(s)],
  /** Upload one file in a single PUT: the object appears whole or not at all, and its ETag is the MD5 of the bytes. */
  putObject: (s: S3Settings, file: string, key: string) => [
    'aws',
    ...globalArgs(s),
    's3api',
    'put-object',
    '--bucket',
    s.bucket,
    '--key',
    key,
    '--body',
    file,
    '--output',
    'json',
  ],
  /**
   * Every object under the prefix, as JSON: the CLI follows the pages (1,000 keys each) itself. ListObjects (v1,
   * marker-paged) rather than v2: S3, R2 and MinIO answer both, and s3rver, which the tests run, fails v2 past 1,000 keys.
   */
  ls: (s: S3Settings) => ['aws', ...globalArgs(s), 's3api', 'list-objects', '--bucket', s.bucket, '--prefix', s.prefix, '--output', 'json'],
  rm: (s: S3Settings, key: string) => ['aws', ...globalArgs(s), 's3', 'rm', s3Url(s, key), '--only-show-errors'],
  headObject: (s: S3Settings, key: string) => [
    'aws',
    ...globalArgs(s),
    's3api',
    'head-object',
    '--bucket',
    s.bucket,
    '--key',
    key,
    '--output',
    'json',
  ],
};

export interface RemoteObject {
  key: string;
  name: string;
  size: number;
  modified: string;
}

/** Turns an aws failure into exit code 8 naming aws's own code (1 transfer failed, 2 skipped, 254 refused by the service, 255 other). */
export function awsFailure(what: string, err: unknown): TaskError {
  if (err instanceof CommandError) {
    const meaning =
      err.exitCode === 1
        ? 'a transfer failed'
        : err.exitCode === 2
          ? 'files were skipped'
          : err.exitCode === 254
            ? 'the service refused the request'
            : err.exitCode === 255
              ? 'command or connection error'
              : 'failed';
    const last = err.stderrTail.trim().split('\n').filter(Boolean).slice(-1)[0];
    return new TaskError(`${what}: aws exited with code ${err.exitCode} (${meaning})${last ? `: ${last}` : ''}`, {
      exitCode: ExitCode.uploadFailed,
      hint: err.hint,
      cause: err,
    });
  }
  if (err instanceof TaskError && (err.exitCode === ExitCode.sigint || err.exitCode === ExitCode.sigterm)) return err;
  if (err instanceof TaskError)
    return new TaskError(`${what}: ${err.message}`, {
      exitCode: err.exitCode === ExitCode.prerequisite ? ExitCode.prerequisite : ExitCode.uploadFailed,
      hint: err.hint,
      cause: err,
    });
  return new TaskError(`${what}: ${(err as Error).message}`, { exitCode: ExitCode.uploadFailed, cause: err });
}

const isInterrupt = (err: unknown) => err instanceof TaskError && (err.exitCode === ExitCode.sigint || err.exitCode === ExitCode.sigterm);

/** Time bounds of aws calls: a listing, a head or a delete; a transfer gets 15 min plus 4 s per MiB (256 KiB/s). */
export const AWS_CALL_MS = 5 * 60_000;
export const transferMs = (bytes: number) => 15 * 60_000 + Math.ceil(bytes / (256 * 1024)) * 1000;
/** A download's size is not known before it starts. */
const DOWNLOAD_MS = 4 * 3600_000;

function awsCmd(s: S3Settings, runner: Runner, argv: string[], extra: Partial<Cmd> = {}): Cmd {
  return { argv, env: awsEnv(s, runner.env), timeoutMs: AWS_CALL_MS, ...extra };
}

export async function listRemote(runner: Runner, s: S3Settings): Promise<RemoteObject[]> {
  let r: Result;
  try {
    r = await runner.run(awsCmd(s, runner, s3.ls(s), { stdout: 'capture', stderr: 'capture' }));
  } catch (err) {
    throw awsFailure(`cannot list s3://${s.bucket}/${s.prefix}`, err);
  }
  if (!r.stdout.trim()) return [];
  const parsed = JSON.parse(r.stdout) as { Contents?: Array<{ Key: string; Size: number; LastModified?: string }> };
  return (parsed.Contents ?? [])
    .filter((o) => o.Key.startsWith(s.prefix) && o.Key.endsWith('.tar.gz') && !o.Key.slice(s.prefix.length).includes('/'))
    .map((o) => ({
      key: o.Key,
      name: o.Key.slice(s.prefix.length).replace(/\.tar\.gz$/, ''),
      size: o.Size,
      modified: o.LastModified ?? '',
    }));
}

/** Size of an object, or undefined when it does not exist. */
export async function remoteSize(runner: Runner, s: S3Settings, key: string): Promise<number | undefined> {
  try {
    const r = await runner.run(awsCmd(s, runner, s3.headObject(s, key), { stdout: 'capture', stderr: 'capture' }));
    if (r.dryRun) return undefined;
    return Number((JSON.parse(r.stdout) as { ContentLength: number }).ContentLength);
  } catch (err) {
    if (err instanceof CommandError && /Not Found|404|NoSuchKey/i.test(err.stderrTail)) return undefined;
    throw awsFailure(`cannot check ${s3Url(s, key)}`, err);
  }
}

/**
 * Files up to this size go up in one PUT, bigger ones multipart through `aws s3 cp` (rclone's default cutoff,
 * 200 MiB). One request is faster up to there (pgbench -s 50 + 200 MB filestore, to s3rver: 1.4–1.7 s vs
 * 2.2–3.2 s) and its ETag lets the upload be checked without another aws call.
 */
export const SINGLE_PUT_MAX = 200 * 1024 * 1024;

/** The ETag of a put-object answer when it is a plain MD5 (not multipart "…-N", not a KMS-encrypted object's). */
export function md5Etag(putObjectJson: string): string | undefined {
  try {
    const etag = String((JSON.parse(putObjectJson) as { ETag?: unknown }).ETag ?? '')
      .replace(/"/g, '')
      .toLowerCase();
    return /^[0-9a-f]{32}$/.test(etag) ? etag : undefined;
  } catch {
    return undefined;
  }
}

export interface UploadOptions {
  /** The file's MD5 (hex), or a promise of it: a single-PUT upload whose ETag matches needs no size check. */
  md5?: string | Promise<string | undefined>;
  attempts?: number;
  /** Wait before attempt n+1 (ms); default 2 s, 4 s, … */
  backoffMs?: (attempt: number) => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Uploads a complete local file to its final key with bounded retries, then checks what arrived: the ETag against
 * the file's MD5 when one PUT carried it, otherwise (multipart, an ETag that is not an MD5) the object's size.
 * Returns how it was checked.
 */
export async function uploadFile(
  runner: Runner,
  s: S3Settings,
  file: string,
  key: string,
  size: number,
  o: UploadOptions = {},
): Promise<'md5' | 'size' | 'dry-run'> {
  const attempts = o.attempts ?? 3;
  const backoff = o.backoffMs ?? ((n: number) => 2000 * n);
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const url = s3Url(s, key);
  let last: TaskError | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      if (size <= (s.singlePutMax ?? SINGLE_PUT_MAX)) {
        const r = await runner.run(
          awsCmd(s, runner, s3.putObject(s, file, key), { stdout: 'capture', stderr: 'capture', timeoutMs: transferMs(size) }),
        );
        if (runner.dryRun) return 'dry-run';
        const etag = md5Etag(r.stdout);
        if (etag && o.md5 !== undefined && etag === (await Promise.resolve(o.md5).catch(() => undefined))) return 'md5';
      } else {
        await runner.run(
          awsCmd(s, runner, s3.cp(s, file, url), { stderr: s.terminal ? 'inherit' : 'capture', timeoutMs: transferMs(size) }),
        );
        if (runner.dryRun) return 'dry-run';
      }
      const remote = await remoteSize(runner, s, key);
      if (remote !== size)
        throw new TaskError(`upload of ${url} incomplete: the object has ${remote ?? 'no'} bytes, the file ${size}`, {
          exitCode: ExitCode.uploadFailed,
        });
      return 'size';
    } catch (err) {
      if (isInterrupt(err)) throw err;
      last = err instanceof TaskError && err.exitCode === ExitCode.uploadFailed ? err : awsFailure(`upload to ${url} failed`, err);
      if (last.exitCode === ExitCode.prerequisite) throw last;
      if (attempt < attempts) {
        runner.log.warn(`${last.message}; retrying (${attempt + 1}/${attempts})`);
        await sleep(backoff(attempt));
        if (runner.signal?.aborted) throw err;
      }
    }
  }
  throw new TaskError(`${last!.message} (after ${attempts} attempts); the backup stays local`, {
    exitCode: ExitCode.uploadFailed,
    hint: last!.hint,
  });
}

export async function downloadFile(runner: Runner, s: S3Settings, key: string, file: string): Promise<void> {
  try {
    await runner.run(
      awsCmd(s, runner, s3.cp(s, s3Url(s, key), file), { stderr: s.terminal ? 'inherit' : 'capture', timeoutMs: DOWNLOAD_MS }),
    );
  } catch (err) {
    throw awsFailure(`download of ${s3Url(s, key)} failed`, err);
  }
}

export async function removeRemote(runner: Runner, s: S3Settings, key: string): Promise<void> {
  try {
    await runner.run(awsCmd(s, runner, s3.rm(s, key), { stderr: 'capture' }));
  } catch (err) {
    throw awsFailure(`cannot delete ${s3Url(s, key)}`, err);
  }
}
