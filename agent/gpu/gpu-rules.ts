// GPU workloads, decided without I/O: which open files make a workload a GPU one, and whether a
// target can take it (the same GPU model and driver, room for its GPU memory). The agents gather
// the facts (agent/gpu/cuda-helper.ts); these rules are what preflight refuses on.
import type { GpuFacts } from '../../api/v1alpha1/gpu.ts';

/** NVIDIA's device nodes: the GPUs themselves, the control device, unified memory, modesetting. */
const NVIDIA_DEVICE = /^\/dev\/nvidia(\d+|ctl|-uvm|-uvm-tools|-modeset)$/;

export function isGpuDevice(path: string): boolean {
  return NVIDIA_DEVICE.test(path);
}

/** The GPU devices among a workload's open files (their /proc/PID/fd targets), each once, sorted. */
export function gpuDevicesHeld(fdTargets: string[]): string[] {
  return [...new Set(fdTargets.filter(isGpuDevice))].sort();
}

/**
 * Why the target cannot take a GPU workload from the source, naming what differs; undefined when
 * it can. `needBytes` is the GPU memory the workload's processes hold on the source.
 */
export function gpuRefusal(source: GpuFacts, target: GpuFacts, needBytes: number): string | undefined {
  if (!source.checkpointApi)
    return `the source's CUDA driver ${driverName(source.driverVersion)} has no checkpoint API (550 or later needed)`;
  if (!target.checkpointApi)
    return `the target's CUDA driver ${driverName(target.driverVersion)} has no checkpoint API (550 or later needed)`;
  if (source.driverVersion !== target.driverVersion)
    return `CUDA driver versions differ: source ${driverName(source.driverVersion)}, target ${driverName(target.driverVersion)}`;
  const model = (f: GpuFacts) => [...new Set(f.devices.map((d) => d.name))].sort().join(', ') || 'no GPU';
  if (model(source) !== model(target))
    return `GPU models differ: source ${model(source)}, target ${model(target)}`;
  const free = Math.max(0, ...target.devices.map((d) => d.freeBytes));
  if (free < needBytes)
    return `the target's GPUs have ${gib(free)} free at most, the workload holds ${gib(needBytes)} of GPU memory`;
  return undefined;
}

/** CUDA's driver version as NVIDIA writes it: 12080 is 12.8. */
export function driverName(v: number): string {
  return `CUDA ${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
