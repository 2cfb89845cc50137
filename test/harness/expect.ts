// Assertions shared by the CLI-level tests: how a bad input must look to the person who typed it.
import { expect } from 'vitest';

/** Error lines the CLI printed (`error: ...`). */
export function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error: '));
}

/** A bad input gives exactly one error line, and it says what is wrong. */
export function expectOneError(r: { stderr: string }, pattern: RegExp): void {
  const errs = errorLines(r.stderr);
  expect(errs, r.stderr).toHaveLength(1);
  expect(errs[0]).toMatch(pattern);
}
