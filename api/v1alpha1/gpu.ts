// What ferry's CUDA helper (workload/cuda-ckpt.c, `ferry-cuda`) reports, one schema per answer:
// the node's driver and GPUs (probe), and a process's CUDA state.
import { z } from 'zod';

export const GpuDeviceSchema = z.object({
  index: z.number().int().min(0),
  name: z.string(),
  uuid: z.string(),
  totalBytes: z.number().int().min(0),
  freeBytes: z.number().int().min(0),
});

export const GpuFactsSchema = z.object({
  /** CUDA's driver API version, as cuDriverGetVersion gives it (12080 is 12.8). */
  driverVersion: z.number().int().min(0),
  /** Whether the driver has cuCheckpointProcess* (550 and later). */
  checkpointApi: z.boolean(),
  devices: z.array(GpuDeviceSchema),
});
export type GpuFacts = z.infer<typeof GpuFactsSchema>;

export const CudaStateSchema = z.object({
  pid: z.number().int().positive(),
  /** none: the process holds no CUDA state (never used CUDA); other: a state newer than ferry. */
  state: z.enum(['none', 'running', 'locked', 'checkpointed', 'failed', 'other']),
});
export type CudaState = z.infer<typeof CudaStateSchema>['state'];

/**
 * What the source's preflight found of a GPU workload, for the target to check itself against:
 * the NVIDIA nodes it holds, the source's driver and GPUs, how many of its processes hold CUDA
 * state, and the GPU memory in use on the GPUs it holds (an upper bound when others share them).
 */
export const GpuUseSchema = z.strictObject({
  devices: z.array(z.string().regex(/^\/dev\/nvidia[a-z0-9-]*$/)).max(16),
  facts: GpuFactsSchema,
  cudaProcesses: z.number().int().min(0),
  memoryBytes: z.number().int().min(0),
});
export type GpuUse = z.infer<typeof GpuUseSchema>;

/** A GPU workload's CUDA state moved: how many processes, how long it took, how much memory. */
export const GpuCheckpointSchema = z.object({
  processes: z.number().int().min(0),
  checkpointMs: z.number().min(0),
  /** Growth of the processes' host memory from the checkpoint: their GPU memory, which CRIU dumped. */
  bytes: z.number().int().min(0),
});
