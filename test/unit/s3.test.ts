import { describe, expect, it } from 'vitest';
import {
  awsEnv,
  awsFailure,
  md5Etag,
  missingCredentials,
  objectKey,
  s3,
  s3Settings,
  s3Url,
  SINGLE_PUT_MAX,
  uploadFile,
  type S3Settings,
} from '../../scripts/tools/s3.ts';
import { CommandError, ExitCode } from '../../scripts/core/errors.ts';
import { createRunner, type Exec } from '../../scripts/core/runner.ts';
import { createLogger } from '../../scripts/core/log.ts';

const r2: S3Settings = {
  bucket: 'backups',
  prefix: 'odoo/',
  endpoint: 'https://acc.r2.cloudflarestorage.com',
  region: 'auto',
  terminal: false,
};
const aws: S3Settings = { bucket: 'backups', prefix: '', terminal: true };

describe('s3 settings', () => {
  it('reads bucket, prefix, endpoint and region from the env; no bucket means local only', () => {
    const env: Record<string, string> = { S3_BUCKET: 's3://b/', S3_PREFIX: 'p/', S3_ENDPOINT: 'http://x:9000', S3_REGION: 'auto' };
    expect(s3Settings((k) => env[k], false)).toEqual({
      bucket: 'b',
      prefix: 'p/',
      endpoint: 'http://x:9000',
      region: 'auto',
      profile: undefined,
      terminal: false,
    });
    expect(s3Settings(() => undefined, false)).toBeUndefined();
  });

  it('the key is prefix + name + .tar.gz', () => {
    expect(objectKey(r2, 'odoo_backup_2026-01-02_03-04-05')).toBe('odoo/odoo_backup_2026-01-02_03-04-05.tar.gz');
    expect(s3Url(r2, 'odoo/x.tar.gz')).toBe('s3://backups/odoo/x.tar.gz');
  });

  it('names missing credentials', () => {
    const none = missingCredentials(
      () => undefined,
      '/nonexistent',
      () => false,
    );
    expect(none).toMatch(/AWS_ACCESS_KEY_ID.*AWS_PROFILE/);
    const env: Record<string, string> = { AWS_ACCESS_KEY_ID: 'AK' };
    expect(
      missingCredentials(
        (k) => env[k],
        '/h',
        () => false,
      ),
    ).toMatch(/AWS_SECRET_ACCESS_KEY/);
    expect(
      missingCredentials(
        (k) => ({ ...env, AWS_SECRET_ACCESS_KEY: 's' })[k],
        '/h',
        () => false,
      ),
    ).toBeUndefined();
    expect(
      missingCredentials(
        (k) => (({ AWS_PROFILE: 'prod' }) as Record<string, string>)[k],
        '/h',
        () => false,
      ),
    ).toBeUndefined();
    expect(
      missingCredentials(
        () => undefined,
        '/h',
        (p) => p === '/h/.aws/credentials',
      ),
    ).toBeUndefined();
  });
});

describe('aws argv builders', () => {
  it('cp with endpoint, region and quiet flags without a terminal', () => {
    expect(s3.cp(r2, '/b/x.tar.gz', 's3://backups/odoo/x.tar.gz')).toEqual([
      'aws',
      '--endpoint-url',
      'https://acc.r2.cloudflarestorage.com',
      '--region',
      'auto',
      's3',
      'cp',
      '/b/x.tar.gz',
      's3://backups/odoo/x.tar.gz',
      '--no-progress',
      '--only-show-errors',
    ]);
  });

  it('cp in a terminal shows errors and no progress bar flood, plain AWS has no endpoint', () => {
    expect(s3.cp(aws, 'a', 'b')).toEqual(['aws', 's3', 'cp', 'a', 'b', '--no-progress']);
  });

  it('ls, rm and head-object', () => {
    expect(s3.ls(r2)).toEqual([
      'aws',
      '--endpoint-url',
      'https://acc.r2.cloudflarestorage.com',
      '--region',
      'auto',
      's3api',
      'list-objects',
      '--bucket',
      'backups',
      '--prefix',
      'odoo/',
      '--output',
      'json',
    ]);
    expect(s3.rm(aws, 'k.tar.gz')).toEqual(['aws', 's3', 'rm', 's3://backups/k.tar.gz', '--only-show-errors']);
    expect(s3.headObject(aws, 'k.tar.gz')).toEqual([
      'aws',
      's3api',
      'head-object',
      '--bucket',
      'backups',
      '--key',
      'k.tar.gz',
      '--output',
      'json',
    ]);
  });

  it('never puts credentials on argv', () => {
    const all = [s3.cp(r2, 'a', 'b'), s3.ls(r2), s3.rm(r2, 'k'), s3.headObject(r2, 'k')].flat().join(' ');
    expect(all).not.toMatch(/secret|AKIA|access/i);
  });
});

describe('aws environment', () => {
  it("retries are aws's own and bounded; the user's settings win, except doctor's quick answer", () => {
    expect(awsEnv(aws, { AWS_MAX_ATTEMPTS: '7', AWS_RETRY_MODE: 'adaptive' })).toEqual({});
    expect(awsEnv(aws, { AWS_MAX_ATTEMPTS: '7' }, { attempts: 2 }).AWS_MAX_ATTEMPTS).toBe('2');
    expect(awsEnv(r2, { AWS_REQUEST_CHECKSUM_CALCULATION: 'when_supported' }).AWS_REQUEST_CHECKSUM_CALCULATION).toBeUndefined();
  });

  it('R2 / custom endpoint: checksums only when required (aws-cli ≥ 2.23 CRC checksums are rejected by R2)', () => {
    const e = awsEnv(r2, {});
    expect(e.AWS_REQUEST_CHECKSUM_CALCULATION).toBe('when_required');
    expect(e.AWS_RESPONSE_CHECKSUM_VALIDATION).toBe('when_required');
  });

  it('plain AWS keeps the defaults; empty AWS variables are removed (an empty AWS_PROFILE breaks aws)', () => {
    const e = awsEnv(aws, { AWS_PROFILE: '', AWS_ACCESS_KEY_ID: 'AK', AWS_DEFAULT_REGION: '' });
    expect(e).toEqual({ AWS_PROFILE: undefined, AWS_DEFAULT_REGION: undefined, AWS_RETRY_MODE: 'standard', AWS_MAX_ATTEMPTS: '3' });
    expect('AWS_REQUEST_CHECKSUM_CALCULATION' in e).toBe(false);
  });
});

describe('upload: one PUT up to 200 MiB, multipart above; what arrived is checked', () => {
  const md5 = '01f85e02e7332bc70484e7939400dcc8';
  const quiet = () => createLogger({ sink: { write: () => true } });
  function recording(answers: (argv: readonly string[]) => { code: number; stdout: string; stderr: string }) {
    const calls: string[][] = [];
    const exec: Exec = async (cmd) => {
      calls.push([...cmd.argv]);
      return answers(cmd.argv);
    };
    return { calls, runner: createRunner({ log: quiet(), env: {}, cwd: '/', exec }) };
  }

  it('put-object argv', () => {
    expect(s3.putObject(r2, '/b/x.tar.gz', 'odoo/x.tar.gz')).toEqual([
      'aws',
      '--endpoint-url',
      'https://acc.r2.cloudflarestorage.com',
      '--region',
      'auto',
      's3api',
      'put-object',
      '--bucket',
      'backups',
      '--key',
      'odoo/x.tar.gz',
      '--body',
      '/b/x.tar.gz',
      '--output',
      'json',
    ]);
  });

  it('reads a plain MD5 ETag, not a multipart one', () => {
    expect(md5Etag(`{"ETag": "\\"${md5.toUpperCase()}\\""}`)).toBe(md5);
    expect(md5Etag('{"ETag": "\\"0123456789abcdef0123456789abcdef-3\\""}')).toBeUndefined();
    expect(md5Etag('not json')).toBeUndefined();
  });

  it('an ETag equal to the file MD5 checks the upload without another call', async () => {
    const { calls, runner } = recording(() => ({ code: 0, stdout: `{"ETag": "\\"${md5}\\""}`, stderr: '' }));
    expect(await uploadFile(runner, aws, '/f', 'k', 10, { md5: Promise.resolve(md5) })).toBe('md5');
    expect(calls.map((c) => c.slice(1, 3))).toEqual([['s3api', 'put-object']]);
  });

  it('an ETag that is not the MD5 (an encrypted object) falls back to the size check, which must pass', async () => {
    const { calls, runner } = recording((argv) =>
      argv.includes('head-object')
        ? { code: 0, stdout: '{"ContentLength": 10}', stderr: '' }
        : { code: 0, stdout: '{"ETag": "\\"ffffffffffffffffffffffffffffffff\\""}', stderr: '' },
    );
    expect(await uploadFile(runner, aws, '/f', 'k', 10, { md5 })).toBe('size');
    expect(calls.map((c) => c[2])).toEqual(['put-object', 'head-object']);
  });

  it('a file over the cutoff goes multipart through aws s3 cp, then its size is checked', async () => {
    const big = SINGLE_PUT_MAX + 1;
    const { calls, runner } = recording((argv) =>
      argv.includes('head-object') ? { code: 0, stdout: `{"ContentLength": ${big}}`, stderr: '' } : { code: 0, stdout: '', stderr: '' },
    );
    expect(await uploadFile(runner, aws, '/f', 'k', big, { md5 })).toBe('size');
    expect(calls.map((c) => c.slice(1, 3).join(' '))).toEqual(['s3 cp', 's3api head-object']);
  });
});

describe('aws failures', () => {
  it.each([
    [1, /code 1 \(a transfer failed\)/],
    [2, /code 2 \(files were skipped\)/],
    [255, /code 255/],
  ])('aws exit %i is an upload failure (exit 8)', (code, re) => {
    const e = awsFailure('upload', new CommandError('aws s3 cp', ['aws'], code, 'upload failed: x'));
    expect(e.exitCode).toBe(ExitCode.uploadFailed);
    expect(e.message).toMatch(re);
  });

  it('uploadFile retries a bounded number of times, then fails with exit 8', async () => {
    let calls = 0;
    const exec: Exec = async () => {
      calls++;
      return { code: 1, stdout: '', stderr: 'upload failed: connection reset' };
    };
    const runner = createRunner({ log: createLogger({ sink: { write: () => true } }), env: {}, cwd: '/', exec });
    const err = await uploadFile(runner, aws, '/f', 'k', 10, { attempts: 3, sleep: async () => undefined }).catch((e) => e);
    expect(calls).toBe(3);
    expect(err.exitCode).toBe(ExitCode.uploadFailed);
    expect(err.message).toMatch(/aws exited with code 1.*after 3 attempts/);
  });

  it('uploadFile fails when the object size differs from the file', async () => {
    const exec: Exec = async (cmd) =>
      cmd.argv.includes('head-object') ? { code: 0, stdout: '{"ContentLength": 5}', stderr: '' } : { code: 0, stdout: '', stderr: '' };
    const runner = createRunner({ log: createLogger({ sink: { write: () => true } }), env: {}, cwd: '/', exec });
    const err = await uploadFile(runner, aws, '/f', 'k', 10, { attempts: 2, sleep: async () => undefined }).catch((e) => e);
    expect(err.exitCode).toBe(ExitCode.uploadFailed);
    expect(err.message).toMatch(/5 bytes, the file 10/);
  });
});
