// Operator tasks: doctor, setup, storage-reset, storage-seed, completion.
import type { AnyTask } from './define.ts';

export const operatorTasks: AnyTask[] = [];
