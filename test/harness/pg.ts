// A throwaway PostgreSQL cluster (initdb + pg_ctl in a temp dir) shared by the whole test run.
import type { PgInfo } from './services.ts';

export async function startPostgres(): Promise<{ info: PgInfo; stop: () => Promise<void> }> {
  throw new Error('not implemented yet');
}
