// Notifications: NOTIFY_URL gets a JSON POST on failure (and on success when asked), HEALTHCHECK_URL gets start / success / fail pings.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase } from '../harness/pg.ts';
import { makeProject, type TestProject } from '../harness/project.ts';

const pg = inject('pg');
let server: http.Server;
let base = '';
const seen: Array<{ method: string; url: string; body: string }> = [];
const projects: TestProject[] = [];
let url = '';

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req
      .setEncoding('utf8')
      .on('data', (d: string) => {
        body += d;
      })
      .on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', body });
        res.end('OK');
      });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  url = await createTestDatabase(pg, 'notify');
});

afterAll(async () => {
  server.close();
  for (const p of projects) await p.cleanup();
});

async function project(env: Record<string, string>): Promise<TestProject> {
  const p = await makeProject({ env: { DATABASE_URL: url, ...env } });
  projects.push(p);
  return p;
}

describe('notifications', () => {
  it('success: start and success pings, a JSON report when NOTIFY_ON_SUCCESS', async () => {
    seen.length = 0;
    const p = await project({ NOTIFY_URL: `${base}/notify`, NOTIFY_ON_SUCCESS: 'true', HEALTHCHECK_URL: `${base}/hc/abc` });
    const r = await p.run(['backup', '--only', 'db']);
    expect(r.code, r.stderr).toBe(0);
    expect(seen.map((s) => s.url).sort()).toEqual(['/hc/abc', '/hc/abc/start', '/notify']);
    const report = JSON.parse(seen.find((s) => s.url === '/notify')!.body) as Record<string, unknown>;
    expect(report).toMatchObject({ status: 'success', task: 'backup', project: p.name, uploaded: false });
    expect(report.size).toBeGreaterThan(0);
  });

  it('failure: start and fail pings, a JSON report naming the error; no secret in it', async () => {
    seen.length = 0;
    const p = await project({ NOTIFY_URL: `${base}/notify`, HEALTHCHECK_URL: `${base}/hc/abc` });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-wrap-'));
    fs.writeFileSync(
      path.join(dir, 'pg_dump'),
      '#!/bin/sh\n[ "$1" = --version ] && exec /usr/bin/pg_dump "$@"\necho "pg_dump: error: connection lost" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const r = await p.run(['backup', '--only', 'db'], { env: { PATH: `${dir}:${process.env.PATH}` } });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.code).toBe(1);
    expect(seen.map((s) => s.url).sort()).toEqual(['/hc/abc/fail', '/hc/abc/start', '/notify']);
    const body = seen.find((s) => s.url === '/notify')!.body;
    const report = JSON.parse(body) as Record<string, unknown>;
    expect(report).toMatchObject({ status: 'failure', exitCode: 1 });
    expect(String(report.error)).toMatch(/pg_dump exited with code 1: pg_dump: error: connection lost/);
    expect(body).not.toContain(new URL(url).password);
  });

  it('a notifier that cannot be reached is a warning, not a failed backup', async () => {
    const p = await project({ NOTIFY_URL: 'http://127.0.0.1:9/notify', NOTIFY_ON_SUCCESS: 'true' });
    const r = await p.run(['backup', '--only', 'db']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: notification to http:\/\/127.0.0.1:9\/notify failed/);
  });
});
