// Progress in status: what the sending step's agent reports (BullMQ job progress) becomes
// status.progress, so `ferry --wait`, `describe` and the dashboard read it from the Migration on
// any store. Written at most once a second: status writes are API calls on Kubernetes. Pure.
import { z } from 'zod';
import type { MigrationStatus, Progress, StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { StepFacts } from './facts.ts';
import { routeOf } from './routes.ts';

/** What agents report (agent/transfer: bytes so far, rate, total, time left); anything else is ignored. */
const ReportedSchema = z.object({
  bytes: z.number().int().min(0),
  totalBytes: z.number().int().min(0).optional(),
  bytesPerSecond: z.number().min(0).optional(),
  etaSeconds: z.number().min(0).optional(),
});

const EVERY_MS = 1000;

/** The status with its progress brought up to date: set while a step sends, gone once none does. */
export function withProgress(
  m: StoredMigration,
  status: MigrationStatus,
  jobs: StepFacts,
  now: string,
): MigrationStatus {
  const step = routeOf(m).sending[status.phase];
  const fact = step ? jobs[step] : undefined;
  const reported = fact?.state === 'active' ? ReportedSchema.safeParse(fact.progress) : undefined;
  if (!step || !reported?.success) {
    if (!status.progress || status.progress.step === step) return status;
    const { progress: _gone, ...rest } = status; // a step of an earlier phase
    return rest;
  }
  const prev = status.progress;
  const fresh = prev?.step !== step || Date.parse(now) - Date.parse(prev.updatedAt) >= EVERY_MS;
  if (!fresh || prev?.bytes === reported.data.bytes) return status;
  const next: Progress = { step, ...reported.data, updatedAt: now };
  return { ...status, progress: next };
}
