// restore <name>: verify, confirm, safety backup, restore into a new database, swap, restart, health check.
import type { AnyTask } from './define.ts';

export const restoreTasks: AnyTask[] = [];
