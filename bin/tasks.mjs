#!/usr/bin/env node
// The `tasks` bin: loads tasks.ts through tsx's loader (faster than `npx tsx`).
import { register } from 'tsx/esm/api';
register();
globalThis.__composeTasksBin = true;
await import('../tasks.ts');
