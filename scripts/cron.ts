// The crontab block for scheduled backups: cron-install, cron-remove, cron-status.
import type { AnyTask } from './define.ts';

export const cronTasks: AnyTask[] = [];
