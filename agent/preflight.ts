// What CRIU cannot move, found before anything is frozen: kernel objects it cannot checkpoint and
// devices that may hold state or be missing on the target; and whether the target has room.
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import { FerryError } from '../lib/errors.ts';
import type { AgentContext } from './context.ts';
import { isGpuDevice } from './gpu/gpu-rules.ts';

/** Devices with no state of their own that every node has: CRIU reopens them by path. */
export const SAFE_DEVICES = new Set([
  '/dev/null',
  '/dev/zero',
  '/dev/full',
  '/dev/random',
  '/dev/urandom',
  '/dev/tty',
  '/dev/ptmx',
]);

/** Why an open file descriptor cannot move, or undefined when it can. Pure. */
export function fdProblem(target: string, isDevice: boolean): string | undefined {
  if (target === 'anon_inode:[io_uring]') return 'an io_uring instance, which CRIU cannot checkpoint';
  if (target.startsWith('anon_inode:[') && /perf_event|bpf|kvm|userfaultfd/.test(target)) {
    return `a ${target.slice(12, -1)} instance, which CRIU cannot checkpoint`;
  }
  // NVIDIA's nodes: a GPU workload's, moved through the CUDA driver (agent/gpu), not by CRIU.
  if (isDevice && isGpuDevice(target)) return undefined;
  if (isDevice && !SAFE_DEVICES.has(target) && !target.startsWith('/dev/pts/')) {
    return `device ${target}, which ferry does not know to be stateless and present on every node`;
  }
  return undefined;
}

/** One open descriptor of a process: what it points at, and whether that is a device. */
export interface OpenFd {
  pid: number;
  fd: string;
  target: string;
  isDevice: boolean;
}

/** Every open descriptor of the given processes, read once for all that preflight asks of them. */
export async function openFds(pids: number[]): Promise<OpenFd[]> {
  const found: OpenFd[] = [];
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const st = await stat(`/proc/${pid}/fd/${fd}`).catch(() => undefined);
      found.push({ pid, fd, target, isDevice: Boolean(st?.isCharacterDevice() || st?.isBlockDevice()) });
    }
  }
  return found;
}

/** Every open descriptor that CRIU cannot move, described. Pure. */
export function unsupportedFds(fds: OpenFd[]): string[] {
  return fds.flatMap(({ pid, fd, target, isDevice }) => {
    const problem = fdProblem(target, isDevice);
    return problem ? [`pid ${pid} fd ${fd}: ${problem}`] : [];
  });
}

/**
 * NUMA memory policies the processes hold (task or mapping policies, as /proc/PID/numa_maps shows
 * them). CRIU does not carry them, and no process can set another's, so they are reported as a
 * warning on the Migration rather than lost in silence. Pure: takes numa_maps texts by pid.
 */
export function memoryPolicies(numaMaps: Record<number, string>): string[] {
  const found: string[] = [];
  for (const [pid, text] of Object.entries(numaMaps)) {
    const policies = new Set(
      text
        .split('\n')
        .map((l) => l.split(' ')[1])
        .filter((p): p is string => Boolean(p) && p !== 'default'),
    );
    if (policies.size) found.push(`pid ${pid}: ${[...policies].sort().join(', ')}`);
  }
  return found;
}

export async function readMemoryPolicies(pids: number[]): Promise<string[]> {
  const maps: Record<number, string> = {};
  for (const pid of pids) maps[pid] = await readFile(`/proc/${pid}/numa_maps`, 'utf8').catch(() => '');
  return memoryPolicies(maps);
}

/**
 * About what CRIU dumps of a process, from its /proc/PID/smaps_rollup (and /proc/PID/status when
 * that lacks the split, before Linux 5.x): its anonymous and shared anonymous memory as
 * proportional shares (Pss), so memory several processes share counts once across them all, not
 * once per process (a PostgreSQL's shared buffers are in every backend's RSS). Bytes. Pure.
 */
export function dumpableBytes(rollup: string, status: string): number | undefined {
  const kb = (text: string, field: string) => {
    const v = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1];
    return v === undefined ? undefined : Number(v) * 1024;
  };
  const anon = kb(rollup, 'Pss_Anon');
  const shmem = kb(rollup, 'Pss_Shmem');
  if (anon !== undefined && shmem !== undefined) return anon + shmem;
  return kb(status, 'VmRSS');
}

/** About what CRIU will dump of these processes, together (dumpableBytes of each). */
export async function dumpableTotal(pids: number[]): Promise<number> {
  const one = async (pid: number) => {
    const read = (f: string) => readFile(`/proc/${pid}/${f}`, 'utf8').catch(() => '');
    return dumpableBytes(await read('smaps_rollup'), await read('status')) ?? 0;
  };
  return (await Promise.all(pids.map(one))).reduce((a, b) => a + b, 0);
}

/** Refuses a target without room for what the source will send, with a margin. Pure. */
export function spaceProblem(what: string, freeBytes: number, needBytes: number): FerryError | undefined {
  const need = Math.ceil(needBytes * 1.1) + 16 * 1024 * 1024;
  if (freeBytes >= need) return undefined;
  const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
  return new FerryError('InsufficientSpace', `${what}: ${mib(freeBytes)} free, ${mib(need)} needed`);
}

const MIN_CRIU = [4, 2];

/** CRIU older than 4.2 cannot dump inet sockets on this kernel (shared/environment.md). Pure. */
export function criuTooOld(version: string): boolean {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a < MIN_CRIU[0]! || (a === MIN_CRIU[0] && b < MIN_CRIU[1]!);
}

/** Both ends' common check: CRIU works and is new enough. */
export function checkCriu(ctx: AgentContext): void {
  if (ctx.criuProblem) throw new FerryError('CriuCheckFailed', `${ctx.config.node}: ${ctx.criuProblem}`);
  if (criuTooOld(ctx.criuVersion)) {
    throw new FerryError(
      'CriuCheckFailed',
      `${ctx.config.node} has CRIU ${ctx.criuVersion}; ferry needs 4.2 or newer`,
    );
  }
}
