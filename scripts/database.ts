// Database lifecycle tasks: migrate, seed, reset-db, psql, db-export, db-import.
import type { AnyTask } from './define.ts';

export const databaseTasks: AnyTask[] = [];
