// The container baseline the benchmarks measure ferry against in the same run: the same workload
// container checkpointed and restored in place on node1 by runc + CRIU (no transfer, no
// controller), its memory and file checked after.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Runc } from '../agent/runtime/runc.ts';
import type { Client } from '../cli/client.ts';
import { exec } from '../lib/exec.ts';
import { FERRY_OPT, nodePaths } from '../lib/paths.ts';
import { runWorkload, unique, verify } from '../test/helpers.ts';

/** What the GPU benchmark does around the dump and the restore (the driver's own calls). */
export interface AroundRunc {
  beforeDump: (pid: number) => Promise<void>;
  afterRestore: (pid: number) => Promise<void>;
}

export interface InPlaceTimes {
  /** From the first step to the workload running again. */
  totalMs: number;
  beforeDumpMs: number;
  dumpMs: number;
  restoreMs: number;
  afterRestoreMs: number;
}

/** One in-place `runc checkpoint` + `runc restore` of a fresh `mib` MiB workload; its time in ms. */
export async function runcInPlace(c: Client, cluster: string, mib: number): Promise<number> {
  const id = unique(`base${mib}`);
  await runWorkload(c, 'node1', id, mib);
  return (await inPlace(c, cluster, id)).totalMs;
}

/**
 * The container `id`, running on node1, checkpointed by `runc checkpoint` and restored in place by
 * `runc restore`, with `around`'s steps before the dump and after the restore; then verified and
 * removed. Each step's time.
 */
export async function inPlace(
  c: Client,
  cluster: string,
  id: string,
  around?: AroundRunc,
): Promise<InPlaceTimes> {
  const node1 = nodePaths(cluster, 'node1');
  const runc = new Runc(node1.runcRoot, path.join(FERRY_OPT, 'bin/criu'));
  const images = path.join(node1.imagesDir, `baseline-${id}`);
  const bundle = path.join(node1.fsRoot, 'containers', id);
  await mkdir(images, { recursive: true, mode: 0o700 });
  const pidOf = async () => (await runc.state(id))?.pid ?? 0;
  const t = [performance.now()];
  await around?.beforeDump(await pidOf());
  t.push(performance.now());
  await exec(
    'runc',
    ['--root', node1.runcRoot, '--criu', runc.criuPath, 'checkpoint'].concat([
      '--image-path',
      `${images}/img`,
      '--work-path',
      `${images}/work`,
      id,
    ]),
    { errorCode: 'CriuDumpFailed' },
  );
  t.push(performance.now());
  await runc.restore(id, bundle, `${images}/img`, `${images}/work-restore`);
  t.push(performance.now());
  await around?.afterRestore(await pidOf());
  t.push(performance.now());
  const v = await verify(c, 'node1', id);
  if (!v.pass) throw new Error(`baseline restore broke the workload: ${v.line}`);
  await c.bus.call('node1', { kind: 'remove', container: id });
  await rm(images, { recursive: true, force: true });
  const step = (i: number) => t[i + 1]! - t[i]!;
  return {
    totalMs: t[4]! - t[0]!,
    beforeDumpMs: step(0),
    dumpMs: step(1),
    restoreMs: step(2),
    afterRestoreMs: step(3),
  };
}
