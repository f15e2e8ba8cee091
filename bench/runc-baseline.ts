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

/** One in-place `runc checkpoint` + `runc restore` of a fresh `mib` MiB workload; its time in ms. */
export async function runcInPlace(c: Client, cluster: string, mib: number): Promise<number> {
  const node1 = nodePaths(cluster, 'node1');
  const runc = new Runc(node1.runcRoot, path.join(FERRY_OPT, 'bin/criu'));
  const id = unique(`base${mib}`);
  await runWorkload(c, 'node1', id, mib);
  const images = path.join(node1.imagesDir, `baseline-${id}`);
  const bundle = path.join(node1.fsRoot, 'containers', id);
  await mkdir(images, { recursive: true, mode: 0o700 });
  const t0 = performance.now();
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
  await runc.restore(id, bundle, `${images}/img`, `${images}/work-restore`);
  const took = performance.now() - t0;
  const v = await verify(c, 'node1', id);
  if (!v.pass) throw new Error(`baseline restore broke the workload: ${v.line}`);
  await c.bus.call('node1', { kind: 'remove', container: id });
  await rm(images, { recursive: true, force: true });
  return took;
}
