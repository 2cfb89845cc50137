// The engine targets of the e2e matrix: each e2e vitest project runs its files against one of them (see vitest.config.ts).
// The pieces a target needs are made once per run and only when a project that needs them runs: Compose v2's plugin
// folder for the v2 targets, the SSH-reached second engine for the remote ones.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DockerInfo } from './services.ts';
import { checkComposeV2, ensureComposeV2, makeDockerConfig } from './compose-v2.ts';
import { startRemoteEngine, type RemoteEngine } from './remote-engine.ts';
import { exec } from './project.ts';

export type Target = NonNullable<DockerInfo['target']>;

/** vitest project name → engine target. */
export const E2E_PROJECTS: Record<string, Target> = {
  'e2e-v2': 'local-v2',
  'e2e-v1': 'local-v1',
  'e2e-remote-v2': 'remote-v2',
  'e2e-remote-v1': 'remote-v1',
};

const log = (msg: string) => process.stderr.write(`[engine targets] ${msg}\n`);

const CONFIG_PREFIX = 'ct-docker-config-';

/** DOCKER_CONFIG folders of runs whose process is gone (the folder name ends with the pid of the run that made it). */
function removeDeadConfigs(): void {
  let names: string[] = [];
  try {
    names = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(CONFIG_PREFIX));
  } catch {
    return;
  }
  for (const n of names) {
    const pid = Number(n.split('-').pop());
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = true;
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) fs.rmSync(path.join(os.tmpdir(), n), { recursive: true, force: true });
  }
}

export interface Targets {
  info(target: Target): Promise<DockerInfo>;
  stop(): Promise<void>;
}

/** `base` is the local engine with the stand-in images (docker.ts); nothing is started until info() asks for it. */
export function engineTargets(base: DockerInfo, runId: string): Targets {
  let v2: Promise<{ dockerConfig: string } | { reason: string }> | undefined;
  let remote: Promise<RemoteEngine | { reason: string }> | undefined;
  const dockerConfig = path.join(os.tmpdir(), `${CONFIG_PREFIX}${runId}-${process.pid}`);
  removeDeadConfigs();

  const composeV2 = () =>
    (v2 ??= (async () => {
      try {
        const { binary, version } = await ensureComposeV2();
        makeDockerConfig(binary, dockerConfig);
        const shown = await checkComposeV2(dockerConfig);
        log(`Compose v2 ${shown} (package ${version}) through DOCKER_CONFIG=${dockerConfig}`);
        return { dockerConfig };
      } catch (err) {
        return { reason: `Compose v2 could not be set up: ${(err as Error).message}` };
      }
    })());

  const remoteEngine = () =>
    (remote ??= (async () => {
      try {
        return await startRemoteEngine(runId, [base.postgresImage!, base.odooImage!]);
      } catch (err) {
        return { reason: `the remote engine (over SSH) could not be set up: ${(err as Error).message}` };
      }
    })());

  const v1Reason = async () => {
    const r = await exec(['docker-compose', 'version', '--short'], { timeoutMs: 30_000 }).catch(() => undefined);
    return r?.code === 0 && /^1\./.test(r.stdout.trim())
      ? undefined
      : 'Compose v1 (`docker-compose` 1.x) is not installed (apt-get install docker-compose)';
  };

  return {
    async info(target) {
      if (!base.available) return { ...base, target };
      const images = { postgresImage: base.postgresImage, odooImage: base.odooImage };
      const v2wanted = target.endsWith('-v2');
      const unavailable = (reason: string): DockerInfo => ({ available: false, reason, target });
      const env: Record<string, string> = {};
      if (v2wanted) {
        const c = await composeV2();
        if ('reason' in c) return unavailable(c.reason);
        env.DOCKER_CONFIG = c.dockerConfig;
      } else {
        const why = await v1Reason();
        if (why) return unavailable(why);
      }
      const composeCmd = v2wanted ? 'docker compose' : 'docker-compose';
      if (!target.startsWith('remote-')) return { available: true, target, composeCmd, env, ...images };
      const r = await remoteEngine();
      if ('reason' in r) return unavailable(r.reason);
      return {
        available: true,
        target,
        composeCmd,
        env: { ...env, DOCKER_HOST: r.dockerHost },
        remote: true,
        remoteHost: r.alias,
        ...images,
      };
    },
    async stop() {
      const r = await remote;
      if (r && !('reason' in r)) await r.stop().catch((err) => log(`stopping the remote engine: ${(err as Error).message}`));
      fs.rmSync(dockerConfig, { recursive: true, force: true });
    },
  };
}
