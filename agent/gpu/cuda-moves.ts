// A GPU workload's CUDA state through a move, driven through ferry's CUDA helper: on the source,
// every process holding CUDA state is locked, then checkpointed (its GPU memory brought into host
// memory, where CRIU dumps it); on the target, after the restore, and on the source in a rollback,
// each is restored and unlocked. The driver must do this while the processes run (it works through
// a thread of theirs), so the source locks before runc freezes the container.
import { FerryError, errorMessage } from '../../lib/errors.ts';
import type { CudaState } from '../../api/v1alpha1/gpu.ts';
import type { CudaHelper } from './cuda-helper.ts';

/** What brings a process in `state` back to running, in order. Pure. */
export function stepsBackToRunning(state: CudaState): ('restore' | 'unlock')[] {
  if (state === 'checkpointed') return ['restore', 'unlock'];
  if (state === 'locked') return ['unlock'];
  return [];
}

/**
 * Locks, then checkpoints, every process among `pids` that holds CUDA state. Returns them and the
 * time it took. If the driver refuses any step, those already locked or checkpointed are brought
 * back to running before the error is thrown: a failed GPU checkpoint leaves the workload as it was.
 */
export async function checkpointGpu(
  helper: CudaHelper,
  pids: number[],
  lockTimeoutMs: number,
): Promise<{ pids: number[]; ms: number }> {
  const started = Date.now();
  const cuda = [...(await helper.cudaProcesses(pids))].filter(([, s]) => s === 'running').map(([p]) => p);
  try {
    for (const pid of cuda) await helper.lock(pid, lockTimeoutMs);
    for (const pid of cuda) await helper.checkpoint(pid);
  } catch (err) {
    await resumeGpu(helper, cuda).catch(() => undefined); // the refusal is the error to report
    throw err;
  }
  return { pids: cuda, ms: Date.now() - started };
}

/**
 * Brings every process among `pids` holding CUDA state back to running (restore, unlock); the
 * target's after its restore, the source's in a rollback. Every process is tried; the first
 * refusal is thrown after, naming how many could not be brought back.
 */
export async function resumeGpu(helper: CudaHelper, pids: number[]): Promise<{ pids: number[]; ms: number }> {
  const started = Date.now();
  const done: number[] = [];
  const failed: string[] = [];
  for (const [pid, state] of await helper.cudaProcesses(pids)) {
    try {
      for (const step of stepsBackToRunning(state)) await helper[step](pid);
      if (state !== 'running') done.push(pid);
    } catch (err) {
      failed.push(`pid ${pid}: ${errorMessage(err)}`);
    }
  }
  if (failed.length)
    throw new FerryError(
      'GpuCheckpointFailed',
      `${failed.length} process(es) could not get their GPU state back: ${failed.join('; ')}`,
    );
  return { pids: done, ms: Date.now() - started };
}
