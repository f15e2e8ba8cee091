// The agent's side of ferry's CUDA helper (`ferry-cuda`, workload/cuda-ckpt.c): each call runs it
// with an argument array and parses its one JSON line; its exit status says which failure it was
// (3 no driver, 4 driver without the checkpoint API, 5 the driver refused), and its stderr, the
// driver's own words, goes into the error.
import type { z } from 'zod';
import { CudaStateSchema, GpuFactsSchema, type CudaState, type GpuFacts } from '../../api/v1alpha1/gpu.ts';
import type { ErrorCode } from '../../api/v1alpha1/errors.ts';
import { FerryError } from '../../lib/errors.ts';
import { exec } from '../../lib/exec.ts';

/** Which ferry error each of the helper's exit statuses is. */
const BY_STATUS: Record<number, ErrorCode> = {
  2: 'Internal', // usage: a bug on our side
  3: 'GpuUnavailable',
  4: 'GpuUnavailable',
  5: 'GpuCheckpointFailed',
};

export class CudaHelper {
  /** `command`: the helper and any arguments before the operation (a test runs a fake through node). */
  constructor(readonly command: readonly string[]) {}

  private get path(): string {
    return this.command.join(' ');
  }

  private async call<S extends z.ZodTypeAny>(args: string[], schema: S): Promise<z.infer<S>> {
    const r = await exec(this.command[0]!, [...this.command.slice(1), ...args]).catch((err: unknown) => {
      throw new FerryError('GpuUnavailable', `ferry's CUDA helper ${this.path} cannot run: ${String(err)}`);
    });
    if (r.code !== 0) {
      const why = r.stderr.trim().replace(/^ferry-cuda: /, '') || `exit ${r.code}`;
      throw new FerryError(BY_STATUS[r.code] ?? 'Internal', `ferry-cuda ${args.join(' ')}: ${why}`);
    }
    const parsed = schema.safeParse(JSON.parse(r.stdout.trim().split('\n').at(-1) ?? 'null'));
    if (!parsed.success)
      throw new FerryError(
        'Internal',
        `ferry-cuda ${args.join(' ')} answered ${r.stdout.trim().slice(0, 200)}`,
      );
    return parsed.data;
  }

  /** The node's CUDA driver and GPUs. */
  probe(): Promise<GpuFacts> {
    return this.call(['probe'], GpuFactsSchema);
  }

  async state(pid: number): Promise<CudaState> {
    return (await this.call(['state', String(pid)], CudaStateSchema)).state;
  }

  /** The processes among `pids` that hold CUDA state, with that state. */
  async cudaProcesses(pids: number[]): Promise<Map<number, CudaState>> {
    const held = new Map<number, CudaState>();
    for (const pid of pids) {
      const s = await this.state(pid);
      if (s !== 'none') held.set(pid, s);
    }
    return held;
  }

  async lock(pid: number, timeoutMs: number): Promise<void> {
    await this.call(['lock', String(pid), String(timeoutMs)], CudaStateSchema);
  }

  async checkpoint(pid: number): Promise<void> {
    await this.call(['checkpoint', String(pid)], CudaStateSchema);
  }

  async restore(pid: number): Promise<void> {
    await this.call(['restore', String(pid)], CudaStateSchema);
  }

  async unlock(pid: number): Promise<void> {
    await this.call(['unlock', String(pid)], CudaStateSchema);
  }
}
