// Backup tasks: backup, backups, verify, prune, upload, download.
import type { AnyTask } from './define.ts';

export const backupTasks: AnyTask[] = [];
