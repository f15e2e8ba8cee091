// A GPU workload on this node: what the source tells
// the target about it, the target's check against that, and the device nodes a container gets
// (this node's own numbers, from its own /dev: never the ones a spec from another node names).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { GpuUse } from '../../api/v1alpha1/gpu.ts';
import { FerryError } from '../../lib/errors.ts';
import type { AgentContext } from '../context.ts';
import type { Device } from '../runtime/oci-spec.ts';
import { dumpableTotal } from '../preflight.ts';
import { checkpointGpu } from './cuda-moves.ts';
import { gpuRefusal, isGpuDevice } from './gpu-rules.ts';
import { deviceNode } from '../runtime/device-node.ts';

/** A GPU device node as a container spec gives it: `containerPath`, with this node's numbers. */
export async function gpuDevice(ctx: AgentContext, containerPath: string): Promise<Device> {
  const onNode = path.join(ctx.config.gpuDevDir, path.basename(containerPath));
  const d = await deviceNode(onNode, containerPath);
  if (d?.type !== 'c')
    throw new FerryError(
      'GpuIncompatible',
      `${ctx.config.node} has no ${containerPath} (looked for ${onNode})`,
    );
  return d;
}

/**
 * The source's account of a GPU workload: its driver and GPUs, its processes' CUDA states (all
 * must be running: one locked or checkpointed is being moved by someone else), the memory in use
 * on the GPUs it holds. Refuses when the node cannot checkpoint CUDA at all.
 */
export async function describeGpuUse(ctx: AgentContext, pids: number[], devices: string[]): Promise<GpuUse> {
  const facts = await ctx.cuda.probe();
  if (!facts.checkpointApi)
    throw new FerryError(
      'GpuUnavailable',
      `${ctx.config.node}'s CUDA driver has no checkpoint API (550 or later needed)`,
    );
  const states = await ctx.cuda.cudaProcesses(pids);
  const busy = [...states].filter(([, s]) => s !== 'running');
  if (busy.length)
    throw new FerryError(
      'GpuCheckpointFailed',
      `process ${busy[0]![0]} is ${busy[0]![1]} in its CUDA driver, not running: something else is checkpointing it`,
    );
  const indexes = devices
    .map((d) => /^\/dev\/nvidia(\d+)$/.exec(d)?.[1])
    .filter((i) => i !== undefined)
    .map(Number);
  const memoryBytes = facts.devices
    .filter((d) => indexes.includes(d.index))
    .reduce((sum, d) => sum + (d.totalBytes - d.freeBytes), 0);
  return { devices, facts, cudaProcesses: states.size, memoryBytes };
}

/** The target's check, before anything is frozen: same GPU and driver, room, the device nodes. */
export async function checkGpuTarget(ctx: AgentContext, use: GpuUse): Promise<void> {
  const mine = await ctx.cuda.probe();
  const why = gpuRefusal(use.facts, mine, use.memoryBytes);
  if (why)
    throw new FerryError('GpuIncompatible', `${ctx.config.node} cannot take this GPU workload: ${why}`);
  for (const d of use.devices) await gpuDevice(ctx, d);
}

/** Whether a container's spec gives it NVIDIA nodes: its CUDA state moves with it. */
export async function isGpuContainer(specPath: string): Promise<boolean> {
  return isGpuSpec(await readFile(specPath, 'utf8').catch(() => '{}'));
}

/** Whether a runtime spec (its text) gives its container NVIDIA device nodes. */
export function isGpuSpec(text: string): boolean {
  const spec = JSON.parse(text) as { linux?: { devices?: Array<{ path?: unknown }> } };
  return (spec.linux?.devices ?? []).some((d) => typeof d.path === 'string' && isGpuDevice(d.path));
}

/** How long the driver may take to let running CUDA work finish before the lock gives up. */
export const GPU_LOCK_TIMEOUT_MS = 30_000;

/**
 * On the source, while the container still runs: its processes' CUDA state locked and checkpointed
 * (their GPU memory brought into host memory, where CRIU dumps it), how long, how many bytes.
 */
export async function checkpointContainerGpu(
  ctx: AgentContext,
  pids: number[],
): Promise<{ processes: number; checkpointMs: number; bytes: number }> {
  const before = await dumpableTotal(pids);
  const r = await checkpointGpu(ctx.cuda, pids, GPU_LOCK_TIMEOUT_MS);
  const bytes = Math.max(0, (await dumpableTotal(pids)) - before);
  ctx.log.info({ processes: r.pids, ms: r.ms, bytes }, 'CUDA state checkpointed');
  return { processes: r.pids.length, checkpointMs: r.ms, bytes };
}
