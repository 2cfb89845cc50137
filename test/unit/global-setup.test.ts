// Which real services the global setup starts for each test project (vitest runs it once per project).
import { describe, expect, it } from 'vitest';
import { servicesFor } from '../harness/global-setup.ts';

describe('servicesFor', () => {
  it('starts nothing for the unit tests, PostgreSQL and S3 for integration, Docker, S3 and PostgreSQL for every e2e target', () => {
    expect(servicesFor('unit')).toEqual([]);
    expect(servicesFor('integration')).toEqual(['pg', 's3']);
    for (const name of ['e2e', 'e2e-v2', 'e2e-v1', 'e2e-remote-v2']) expect(servicesFor(name)).toEqual(['docker', 's3', 'pg']);
    expect(servicesFor('e2efoo')).toEqual([]);
  });
});
