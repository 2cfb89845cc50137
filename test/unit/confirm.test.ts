import { describe, expect, it } from 'vitest';
import { confirm } from '../../scripts/core/confirm.ts';
import { createLogger } from '../../scripts/core/log.ts';
import { ExitCode } from '../../scripts/core/errors.ts';

const log = createLogger({ sink: { write: () => true } });

describe('confirm', () => {
  it('refuses without a terminal unless --yes, and never waits for input', async () => {
    await expect(confirm({ message: 'Drop database odoo' }, { yes: false, interactive: false, log })).rejects.toMatchObject({
      exitCode: ExitCode.refused,
      hint: 'pass --yes to confirm without a terminal',
    });
    await expect(confirm({ message: 'Drop database odoo' }, { yes: true, interactive: false, log })).resolves.toBeUndefined();
  });

  it('in production needs --yes --force without a terminal', async () => {
    const req = { message: 'Reset production', typed: 'odoo', requireForce: true };
    await expect(confirm({ ...req, force: false }, { yes: true, interactive: false, log })).rejects.toMatchObject({
      exitCode: ExitCode.refused,
    });
    await expect(confirm({ ...req, force: true }, { yes: true, interactive: false, log })).resolves.toBeUndefined();
  });

  it('asks for the database name to be typed, and refuses a wrong answer', async () => {
    await expect(
      confirm({ message: 'Replace odoo', typed: 'odoo' }, { yes: false, interactive: true, log, inject: ['odoo'] }),
    ).resolves.toBeUndefined();
    await expect(
      confirm({ message: 'Replace odoo', typed: 'odoo' }, { yes: false, interactive: true, log, inject: ['od'] }),
    ).rejects.toMatchObject({ exitCode: ExitCode.refused });
  });

  it('aborts with exit 130 on Ctrl-C at the prompt', async () => {
    await expect(
      confirm({ message: 'Replace odoo' }, { yes: false, interactive: true, log, inject: [new Error('ctrl-c')] }),
    ).rejects.toMatchObject({ exitCode: ExitCode.sigint });
  });

  it('answers no by default', async () => {
    await expect(confirm({ message: 'Delete volumes' }, { yes: false, interactive: true, log, inject: [false] })).rejects.toMatchObject({
      exitCode: ExitCode.refused,
    });
  });
});
