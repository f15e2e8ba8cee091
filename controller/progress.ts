// What an agent reports while a step sends bytes (BullMQ job progress), and which step sends in
// each phase. Read by `ferry migrate --wait` and the dashboard.
import type { Phase } from '../api/v1alpha1/migration.ts';
import type { StepName } from './reconcile.ts';

/** The step that moves bytes in each phase: the running send, the streamed dump, the rest. */
export const SENDING_STEP: Partial<Record<Phase, StepName & ('sync' | 'checkpoint' | 'transfer')>> = {
  Syncing: 'sync',
  Checkpointing: 'checkpoint',
  Transferring: 'transfer',
};

export interface Progress {
  bytes?: number;
  bytesPerSecond?: number;
  totalBytes?: number;
  etaSeconds?: number;
}
