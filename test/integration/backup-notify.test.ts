// Notifications: NOTIFY_URL gets a JSON POST on failure (and on success when asked), or a Slack / Discord / Teams message;
// NOTIFY_SMTP_URL an e-mail (a real SMTP server on loopback); HEALTHCHECK_URL gets start / success / fail pings.
// A receiver that is down or refuses changes nothing about the backup's own result.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { SMTPServer } from 'smtp-server';
import { createTestDatabase } from '../harness/pg.ts';
import { makeProject, type TestProject } from '../harness/project.ts';

const pg = inject('pg');
let server: http.Server;
let base = '';
const seen: Array<{ method: string; url: string; body: string; type: string }> = [];
const projects: TestProject[] = [];
let url = '';
let smtp: SMTPServer;
let smtpPort = 0;
const mails: Array<{ from: string; to: string[]; user: string; text: string }> = [];
const SMTP_USER = 'alerts@example.com';
const SMTP_PASS = 'smtp-Pa55:w0rd/secret';
const smtpUrl = (port: number) => `smtp://${encodeURIComponent(SMTP_USER)}:${encodeURIComponent(SMTP_PASS)}@127.0.0.1:${port}`;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req
      .setEncoding('utf8')
      .on('data', (d: string) => {
        body += d;
      })
      .on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', body, type: req.headers['content-type'] ?? '' });
        res.end('OK');
      });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  url = await createTestDatabase(pg, 'notify');
  smtp = new SMTPServer({
    // Plain SMTP with AUTH on loopback (a relay in the field offers STARTTLS, which nodemailer then uses).
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    onAuth(auth, _session, cb) {
      if (auth.username === SMTP_USER && auth.password === SMTP_PASS) cb(null, { user: auth.username });
      else cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      let text = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => {
        text += d;
      });
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          user: String(session.user ?? ''),
          // quoted-printable soft line breaks joined
          text: text.replace(/=\r?\n/g, ''),
        });
        cb();
      });
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
  smtpPort = (smtp.server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  server.close();
  await new Promise<void>((r) => smtp.close(() => r()));
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
    // The fail ping carries the error as plain text (healthchecks.io shows it), the report is JSON.
    const fail = seen.find((s) => s.url === '/hc/abc/fail')!;
    expect(fail.type).toBe('text/plain; charset=utf-8');
    expect(fail.body).toMatch(/pg_dump: error: connection lost/);
    expect(seen.find((s) => s.url === '/notify')!.type).toBe('application/json');
  });

  /** A PATH whose pg_dump fails the way a lost connection does. */
  const brokenPgDump = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ct-wrap-'));
    fs.writeFileSync(
      path.join(dir, 'pg_dump'),
      '#!/bin/sh\n[ "$1" = --version ] && exec /usr/bin/pg_dump "$@"\necho "pg_dump: error: connection lost" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    return { PATH: `${dir}:${process.env.PATH}` };
  };
  const archives = (p: TestProject) => fs.readdirSync(path.join(p.dir, 'backup')).filter((f) => f.endsWith('.tar.gz'));

  it.each([
    ['slack', 'text'],
    ['discord', 'content'],
    ['teams', 'text'],
  ])('NOTIFY_FORMAT=%s: the webhook gets its %s field, one line naming the project and the error', async (format, field) => {
    seen.length = 0;
    const p = await project({ NOTIFY_URL: `${base}/hooks/${format}`, NOTIFY_FORMAT: format });
    const r = await p.run(['backup', '--only', 'db'], { env: brokenPgDump() });
    expect(r.code).toBe(1);
    const got = seen.find((x) => x.url === `/hooks/${format}`);
    expect(got, r.stderr).toBeDefined();
    const body = JSON.parse(got!.body) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual([field]);
    expect(String(body[field])).toMatch(
      new RegExp(`^backup of ${p.name} \\(development\\) on .+ FAILED: .*connection lost.*\\(exit 1\\)$`),
    );
    expect(got!.body).not.toContain(new URL(url).password);
  });

  it('NOTIFY_SMTP_URL: an e-mail through a real SMTP server (AUTH) naming the failure; password never printed', async () => {
    mails.length = 0;
    const p = await project({ NOTIFY_SMTP_URL: smtpUrl(smtpPort), NOTIFY_EMAIL_TO: 'ops@example.com, boss@example.com' });
    const r = await p.run(['backup', '--only', 'db'], { env: brokenPgDump() });
    expect(r.code).toBe(1);
    expect(mails, r.stderr).toHaveLength(1);
    const m = mails[0]!;
    expect(m).toMatchObject({ from: SMTP_USER, to: ['ops@example.com', 'boss@example.com'], user: SMTP_USER });
    expect(m.text).toMatch(new RegExp(`^Subject: \\[${p.name}\\] backup FAILED on `, 'm'));
    expect(m.text).toMatch(/FAILED: .*connection lost/);
    expect(m.text).toMatch(/^exitCode: 1$/m);
    expect(r.stderr).not.toMatch(/warning: notification/);
    for (const out of [r.stdout, r.stderr]) expect(out).not.toContain(SMTP_PASS);
  });

  it('success e-mail only with NOTIFY_ON_SUCCESS; a wrong SMTP password is a warning, the backup still succeeds', async () => {
    mails.length = 0;
    const good = await project({ NOTIFY_SMTP_URL: smtpUrl(smtpPort), NOTIFY_EMAIL_TO: 'ops@example.com', NOTIFY_ON_SUCCESS: 'true' });
    expect((await good.run(['backup', '--only', 'db'])).code).toBe(0);
    expect(mails).toHaveLength(1);
    expect(mails[0]!.text).toMatch(/ backup done on /);
    const wrong = `smtp://${encodeURIComponent(SMTP_USER)}:wrong-Pa55word@127.0.0.1:${smtpPort}`;
    const bad = await project({ NOTIFY_SMTP_URL: wrong, NOTIFY_EMAIL_TO: 'ops@example.com', NOTIFY_ON_SUCCESS: 'true' });
    const r = await bad.run(['backup', '--only', 'db']);
    expect(r.code, r.stderr).toBe(0);
    expect(archives(bad)).toHaveLength(1);
    expect(r.stderr).toMatch(
      /warning: notification e-mail to ops@example.com through smtp:\/\/alerts%40example.com:\*\*\*@127.0.0.1:\d+ failed: .*Invalid/,
    );
    expect(r.stderr).not.toContain('wrong-Pa55word');
    expect(mails).toHaveLength(1);
  });

  it('every receiver down: a failed backup still exits 1, a good one 0 with its archive; warnings, no secret', async () => {
    const down = await closedPort();
    const hook = `http://127.0.0.1:${down}/services/T0AAAA/B0BBBB/xoxbSecretToken123`;
    const env = {
      NOTIFY_URL: hook,
      NOTIFY_SMTP_URL: smtpUrl(down),
      NOTIFY_EMAIL_TO: 'ops@example.com',
      HEALTHCHECK_URL: `http://127.0.0.1:${down}/ping/5f2c-uuid-secret`,
      NOTIFY_ON_SUCCESS: 'true',
    };
    const ok = await project(env);
    const r = await ok.run(['backup', '--only', 'db']);
    expect(r.code, r.stderr).toBe(0);
    expect(archives(ok)).toHaveLength(1);
    expect(r.stderr).toMatch(/warning: notification to http:\/\/127.0.0.1:\d+\*\*\* failed/);
    expect(r.stderr).toMatch(/warning: notification e-mail to ops@example.com through .* failed: .*ECONNREFUSED/);
    const failed = await project(env);
    const f = await failed.run(['backup', '--only', 'db'], { env: brokenPgDump() });
    expect(f.code).toBe(1);
    expect(f.stderr).toMatch(/pg_dump exited with code 1/);
    expect(f.stderr).toMatch(/warning: notification e-mail .* failed/);
    for (const out of [r.stdout, r.stderr, f.stdout, f.stderr])
      for (const secret of ['xoxbSecretToken123', '5f2c-uuid-secret', SMTP_PASS, encodeURIComponent(SMTP_PASS)])
        expect(out).not.toContain(secret);
  });

  it('a webhook answering 500 is a warning naming the status; the backup succeeds', async () => {
    const failing = http.createServer((_req, res) => {
      res.statusCode = 500;
      res.end('boom');
    });
    await new Promise<void>((r) => failing.listen(0, '127.0.0.1', () => r()));
    const port = (failing.address() as net.AddressInfo).port;
    const p = await project({ NOTIFY_URL: `http://127.0.0.1:${port}/hook`, NOTIFY_ON_SUCCESS: 'true' });
    const r = await p.run(['backup', '--only', 'db']);
    failing.close();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: notification to http:\/\/127.0.0.1:\d+\*\*\* answered HTTP 500/);
  });

  it('a notifier that cannot be reached is a warning, not a failed backup', async () => {
    const p = await project({ NOTIFY_URL: 'http://127.0.0.1:9/notify', NOTIFY_ON_SUCCESS: 'true' });
    const r = await p.run(['backup', '--only', 'db']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: notification to http:\/\/127.0.0.1:9\*\*\* failed/);
  });
});

/** A port nobody listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((res) => srv.listen(0, '127.0.0.1', res));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((res) => srv.close(res));
  return port;
}
