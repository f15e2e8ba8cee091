// What an agent checks of its node's CRIU at start-up: that it works, its version, the features the
// memory strategies need, and whether lazy pages (PostCopy) really work here.
import { mkdir } from 'node:fs/promises';
import type { AgentConfig } from '../../api/v1alpha1/cluster.ts';
import { errorMessage } from '../../lib/errors.ts';
import { exec } from '../../lib/exec.ts';
import type { Logger } from '../../lib/logger.ts';
import { probeLazyPages } from './lazy-probe.ts';

export async function criuProblem(criu: string): Promise<string | undefined> {
  const r = await exec(criu, ['check']).catch((err: unknown) => ({
    code: -1,
    stdout: '',
    stderr: errorMessage(err),
  }));
  return r.code === 0
    ? undefined
    : `criu check failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`;
}

export async function criuFeature(criu: string, feature: string): Promise<boolean> {
  const r = await exec(criu, ['check', '--feature', feature]).catch(() => ({ code: -1 }));
  return r.code === 0;
}

/** Why PostCopy cannot run here: no userfaultfd, or a real lazy-pages round trip fails (criu/lazy-probe.ts). */
export async function lazyPagesProblem(config: AgentConfig, log: Logger): Promise<string | undefined> {
  if (!(await criuFeature(config.criuPath, 'uffd-noncoop'))) {
    log.warn('PostCopy unavailable: criu check --feature uffd-noncoop fails');
    return '`criu check --feature uffd-noncoop` fails (no userfaultfd)';
  }
  await mkdir(config.imagesDir, { recursive: true, mode: 0o700 });
  const problem = await probeLazyPages(config.criuPath, config.imagesDir);
  if (!problem) return undefined;
  // Test clusters (fault hooks on) still offer PostCopy, so that its failure path (a restore that
  // cannot get its pages rolls back to the source) runs in CI on machines where it fails.
  log.warn(
    { problem, offeredAnyway: config.faultHooks },
    'PostCopy unavailable: CRIU lazy pages fail their self-test',
  );
  return config.faultHooks ? undefined : `the lazy-pages self-test failed: ${problem}`;
}

export async function criuVersion(criu: string): Promise<string> {
  const r = await exec(criu, ['--version']).catch(() => ({ stdout: '' }));
  return /Version: (\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
}
