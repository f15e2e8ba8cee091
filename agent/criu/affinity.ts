// CPU affinity: CRIU does not carry it (the kernel-feature test showed a restored task allowed on
// every CPU), so ferry records each task's allowed CPUs while the workload is frozen, keyed by its
// thread id inside the container's PID namespace (the same on both ends), and sets them again
// right after the restore.
import { readFile, readdir } from 'node:fs/promises';
import { exec } from '../../lib/exec.ts';

export type AffinityMap = Record<string, string>;

/** Where the map travels, beside the CRIU images. */
export const AFFINITY_FILE = 'affinity.json';

/** The container-namespace thread id and allowed-CPU list of one task, from its status file. Pure. */
export function parseTaskStatus(status: string): { nsTid: string; cpus: string } | undefined {
  const nsTid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).pop();
  const cpus = /^Cpus_allowed_list:\s+(.*)$/m.exec(status)?.[1]?.trim();
  return nsTid && cpus ? { nsTid, cpus } : undefined;
}

async function tasks(pids: number[]): Promise<Array<{ tid: number; status: string }>> {
  const out = [];
  for (const pid of pids) {
    for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
      const status = await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8').catch(() => '');
      if (status) out.push({ tid: Number(tid), status });
    }
  }
  return out;
}

export async function captureAffinity(pids: number[]): Promise<AffinityMap> {
  const map: AffinityMap = {};
  for (const t of await tasks(pids)) {
    const parsed = parseTaskStatus(t.status);
    if (parsed) map[parsed.nsTid] = parsed.cpus;
  }
  return map;
}

/** Sets the recorded affinity on the restored tasks; returns the tasks it could not set. */
export async function applyAffinity(pids: number[], map: AffinityMap): Promise<string[]> {
  const failed: string[] = [];
  for (const t of await tasks(pids)) {
    const parsed = parseTaskStatus(t.status);
    const want = parsed && map[parsed.nsTid];
    if (!want || want === parsed.cpus) continue;
    const r = await exec('taskset', ['-p', '-c', want, String(t.tid)]);
    if (r.code !== 0) failed.push(`task ${parsed.nsTid}: CPUs ${want}: ${r.stderr.trim()}`);
  }
  return failed;
}
