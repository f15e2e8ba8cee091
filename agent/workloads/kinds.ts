// The workload kinds by name (the seam is kind.ts). Adding one: a file beside this one
// implementing WorkloadKind, its name in api/v1alpha1/jobs.ts's WorkloadKindSchema, a line here.
import type { WorkloadKindName } from '../../api/v1alpha1/jobs.ts';
import { containerKind } from './container.ts';
import type { WorkloadKind } from './kind.ts';
import { processTreeKind } from './process-tree.ts';

const KINDS: Record<WorkloadKindName, WorkloadKind> = {
  container: containerKind,
  process: processTreeKind,
};

/** The kind a job names. */
export const workloadKind = (job: { migration: { workload: WorkloadKindName } }): WorkloadKind =>
  KINDS[job.migration.workload];
