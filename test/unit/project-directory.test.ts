// The project directory compose gets (--project-directory): compose's own rule for other projects' files, the root for the shipped layout.
import { describe, expect, it } from 'vitest';
import { composeBase, projectDirectory } from '../../scripts/tools/compose.ts';

const root = '/srv/tasks';
const shipped = { composeFiles: ['compose/compose.yaml'] };
const files = ['compose/compose.yaml', 'compose/compose.dev.yaml'];

describe('projectDirectory', () => {
  it('the configured files inside the root: the root (./addons beside compose/ in the shipped stack)', () => {
    expect(projectDirectory(root, {}, shipped, files)).toBe(root);
    // COMPOSE_FILE starting with the configured base file (e.g. adding a production override) keeps it too.
    expect(projectDirectory(root, { COMPOSE_FILE: 'compose/compose.yaml:compose/compose.prod.yaml' }, shipped, [])).toBe(root);
  });

  it("COMPOSE_FILE naming another project's file: compose's rule, the first file's folder", () => {
    expect(projectDirectory(root, { COMPOSE_FILE: '/home/me/shop/compose.yaml' }, shipped, [])).toBe('/home/me/shop');
    expect(projectDirectory(root, { COMPOSE_FILE: '/home/me/shop/docker/compose.yaml:/home/me/shop/ci.yaml' }, shipped, [])).toBe(
      '/home/me/shop/docker',
    );
    // Relative entries are relative to where the tasks run (compose's working directory), like compose resolves them.
    expect(projectDirectory(root, { COMPOSE_FILE: '../shop/compose.yaml' }, shipped, [])).toBe('/srv/shop');
    expect(projectDirectory(root, { COMPOSE_FILE: 'a.yml;b.yml', COMPOSE_PATH_SEPARATOR: ';' }, shipped, [])).toBe(root);
    expect(projectDirectory(root, { COMPOSE_FILE: 'vendor/app/compose.yaml' }, shipped, [])).toBe('/srv/tasks/vendor/app');
  });

  it('configured files outside the root: their folder, unless projectDirectory is configured', () => {
    const outside = { composeFiles: ['../app/compose.yaml'] };
    expect(projectDirectory(root, {}, outside, ['../app/compose.yaml'])).toBe('/srv/app');
    expect(projectDirectory(root, {}, { ...outside, projectDirectory: '../app/..' }, ['../app/compose.yaml'])).toBe('/srv');
    expect(projectDirectory(root, {}, { ...shipped, projectDirectory: 'compose' }, files)).toBe('/srv/tasks/compose');
  });

  it('COMPOSE_PROJECT_DIRECTORY decides for any files (compose itself reads no such variable)', () => {
    expect(projectDirectory(root, { COMPOSE_PROJECT_DIRECTORY: '.', COMPOSE_FILE: '/home/me/shop/compose.yaml' }, shipped, [])).toBe(root);
    expect(projectDirectory(root, { COMPOSE_PROJECT_DIRECTORY: '/opt/x' }, shipped, files)).toBe('/opt/x');
  });

  it('composeBase passes it as --project-directory, files stay relative to the root', () => {
    expect(composeBase({ flavor: 'v2', root, projectDir: '/home/me/shop', files: [] })).toEqual([
      'docker',
      'compose',
      '--project-directory',
      '/home/me/shop',
    ]);
    expect(composeBase({ flavor: 'v1', root, files })).toEqual([
      'docker-compose',
      '--project-directory',
      root,
      '-f',
      files[0],
      '-f',
      files[1],
    ]);
  });
});
