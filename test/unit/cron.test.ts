import { describe, expect, it } from 'vitest';
import { cronBlock, cronCommand, findBlock, replaceBlock, toolDirs, validSchedule, type CronSpec } from '../../scripts/tasks/cron.ts';

const spec: CronSpec = {
  project: 'odoo',
  schedule: '0 2 */5 * *',
  root: '/srv/odoo stack',
  node: '/usr/local/bin/node',
  bin: '/srv/odoo stack/bin/tasks.mjs',
  logFile: '/srv/odoo stack/backup/cron.log',
  lockFile: '/srv/odoo stack/backup/.cron.lock',
  pathDirs: ['/usr/local/bin', '/opt/aws/bin', '/usr/bin', '/bin', '/usr/bin'],
};

describe('cron block', () => {
  it('one line: log and lock folders made, cd to the root, PATH with the tools, flock -n, absolute node and bin, log appended', () => {
    expect(cronCommand(spec)).toBe(
      "mkdir -p -m 700 '/srv/odoo stack/backup' && cd '/srv/odoo stack' && " +
        "PATH=/usr/local/bin:/opt/aws/bin:/usr/bin:/bin flock -n '/srv/odoo stack/backup/.cron.lock' " +
        "/usr/local/bin/node '/srv/odoo stack/bin/tasks.mjs' backup --reason scheduled >> '/srv/odoo stack/backup/cron.log' 2>&1",
    );
  });

  it('between BEGIN / END markers with the schedule first', () => {
    const lines = cronBlock(spec).split('\n');
    expect(lines[0]).toBe('# BEGIN odoo tasks');
    expect(lines.at(-1)).toBe('# END odoo tasks');
    expect(lines[2]!.startsWith('0 2 */5 * * mkdir -p ')).toBe(true);
  });

  it('escapes % (cron turns it into a newline) and passes --env when installed for one', () => {
    const c = cronCommand({ ...spec, root: '/srv/100%', appEnv: 'production' });
    expect(c).toContain('cd /srv/100\\% &&');
    expect(c).toContain('--env production');
  });

  it('installing is idempotent and keeps the other lines', () => {
    const mine = '# my own job\n*/10 * * * * /usr/bin/true\n';
    const once = replaceBlock(mine, 'odoo', cronBlock(spec));
    const twice = replaceBlock(once, 'odoo', cronBlock(spec));
    expect(twice).toBe(once);
    expect(once.startsWith(mine)).toBe(true);
    expect(once.match(/# BEGIN odoo tasks/g)).toHaveLength(1);
  });

  it('updating replaces the block; removing leaves the rest untouched; other projects are not touched', () => {
    const other = replaceBlock('', 'crm', cronBlock({ ...spec, project: 'crm' }));
    const installed = replaceBlock(other, 'odoo', cronBlock(spec));
    const updated = replaceBlock(installed, 'odoo', cronBlock({ ...spec, schedule: '30 3 * * *' }));
    expect(findBlock(updated, 'odoo')).toContain('30 3 * * * mkdir');
    expect(findBlock(updated, 'odoo')).not.toContain('0 2 */5 * *');
    expect(replaceBlock(updated, 'odoo')).toBe(other);
    expect(findBlock(updated, 'crm')).toBeDefined();
  });

  it('validates schedules', () => {
    expect(validSchedule('0 2 */5 * *')).toBe(true);
    expect(validSchedule('@daily')).toBe(true);
    expect(validSchedule('0 2 * *')).toBe(false);
    expect(validSchedule('0 2 * * * rm -rf /')).toBe(false);
  });

  it('PATH holds the folders where the tools are now, then the system ones', () => {
    const have = new Set(['/opt/aws/bin/aws', '/usr/bin/flock', '/usr/bin/tar', '/usr/lib/postgresql/15/bin/pg_dump']);
    const { dirs, missing } = toolDirs('/opt/aws/bin:/usr/lib/postgresql/15/bin:/usr/bin:relative', (p) => have.has(p));
    expect(dirs.slice(0, 3)).toEqual(['/opt/aws/bin', '/usr/lib/postgresql/15/bin', '/usr/bin']);
    expect(dirs).toContain('/bin');
    expect(missing).toContain('docker');
  });
});
