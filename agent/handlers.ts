// Maps each job kind to the function that does it, typed by the kind's result schema
// (api/v1alpha1/job-results.ts). The worker parses jobs before they get here.
import type { JobResultInput } from '../api/v1alpha1/job-results.ts';
import type { Job, JobKind, JobOf } from '../api/v1alpha1/jobs.ts';
import type { AgentContext } from './context.ts';
import { exportCheckpoint, importCheckpoint } from './archive.ts';
import { runBundle, runImage } from './images/run-image.ts';
import * as pods from './kube/pod-jobs.ts';
import * as source from './migration-source.ts';
import * as target from './migration-target.ts';
import { runWorkload, selfRequest, verifyFeatures, verifyWorkload } from './workload.ts';
import { listContainers, removeContainer } from './runtime/containers.ts';
import { readLogs, requireState } from './workloads/container.ts';

type Handlers = { [K in JobKind]: (ctx: AgentContext, job: JobOf<K>) => Promise<JobResultInput<K>> };

export const handlers: Handlers = {
  run: runWorkload,
  runImage,
  runBundle,
  verify: verifyWorkload,
  verifyFeatures,
  selfRequest,
  list: listContainers,
  export: exportCheckpoint,
  import: importCheckpoint,
  remove: async (ctx, job) => {
    await removeContainer(ctx, job.container);
    return { removed: job.container };
  },
  logs: readLogs,
  exec: async (ctx, job) => {
    await requireState(ctx, job.container, ['running']);
    const r = await ctx.runc.exec(job.container, job.command);
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  },
  preflightSource: source.preflightSource,
  sync: source.sync,
  checkpoint: source.checkpoint,
  transfer: source.transfer,
  cleanupSource: source.cleanupSource,
  resumeSource: source.resumeSource,
  preflightTarget: target.preflightTarget,
  restore: target.restore,
  verifyTarget: target.verifyTarget,
  cleanupTarget: target.cleanupTarget,
  rollbackTarget: target.rollbackTarget,
  podFreeze: pods.podFreeze,
  podThaw: pods.podThaw,
  podSync: pods.podSync,
  podCheckpoint: pods.podCheckpoint,
  podSend: pods.podSend,
  podImport: pods.podImport,
  podRemoveImages: pods.podRemoveImages,
  podVolumes: pods.podVolumes,
  podCleanup: pods.podCleanup,
};

export function dispatch(ctx: AgentContext, job: Job): Promise<unknown> {
  // The union is narrowed by `kind`; TypeScript cannot correlate the two lookups, hence the cast.
  const fn = handlers[job.kind] as (ctx: AgentContext, job: Job) => Promise<unknown>;
  return fn(ctx, job);
}
