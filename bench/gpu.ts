// GPU checkpoint and restore time against GPU memory size (issue 19). Run on a GPU machine by
// test/gpu/check.sh --bench, on the cluster it brought up, with the CUDA workload's bundle it made.
// For each size, in the same run:
//  - baseline: the workload checkpointed and restored in place on node1 by the driver's own API
//    (ferry's CUDA helper: lock + checkpoint, then restore + unlock, as the agent calls them) around bare `runc checkpoint`
//    and `runc restore`, no transfer and no controller;
//  - ferry: the same workload moved from node1 to node2 by a Migration.
// Prints each step and the ratio of ferry's downtime to the baseline's whole checkpoint+restore,
// and writes bench/results/gpu.json beside the code that ran.
//   gpu-bench --bundle DIR [--cluster gpu] [--sizes 1024,4096,16384]   (sizes in MiB of GPU memory)
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AgentConfigSchema } from '../api/v1alpha1/cluster.ts';
import { CudaHelper } from '../agent/gpu/cuda-helper.ts';
import { checkpointGpu, resumeGpu } from '../agent/gpu/cuda-moves.ts';
import { GPU_LOCK_TIMEOUT_MS } from '../agent/gpu/gpu-node.ts';
import { connect } from '../cli/client.ts';
import { nodePaths } from '../lib/paths.ts';
import { migrate, unique, verify } from '../test/helpers.ts';
import { startBundle } from '../test/gpu/start-bundle.ts';
import { writeResults } from './results-file.ts';
import { inPlace } from './runc-baseline.ts';

const { values: o } = parseArgs({
  options: {
    bundle: { type: 'string' },
    cluster: { type: 'string', default: 'gpu' },
    sizes: { type: 'string', default: '1024,4096,16384' },
  },
});
if (!o.bundle) {
  console.error('usage: gpu-bench --bundle DIR [--cluster gpu] [--sizes 1024,4096,16384]');
  process.exit(2);
}
const cluster = o.cluster;
const sizes = o.sizes.split(',').map(Number);
const secs = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);

/** The base bundle with the workload's memory set to `mib` (its --gpu-mib, or the CPU fake's --mem-mib). */
async function bundleOf(mib: number): Promise<string> {
  const base = path.resolve(o.bundle!);
  const spec = JSON.parse(await readFile(path.join(base, 'config.json'), 'utf8')) as {
    process: { args: string[] };
  };
  const at = spec.process.args.findIndex((a) => a === '--gpu-mib' || a === '--mem-mib');
  if (at < 0) throw new Error(`${base}/config.json: its workload takes no --gpu-mib`);
  spec.process.args[at + 1] = String(mib);
  const dir = `${base}-${mib}`;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  await symlink(path.join(base, 'rootfs'), path.join(dir, 'rootfs'));
  return dir;
}

const c = await connect(cluster);
const config = AgentConfigSchema.parse(
  JSON.parse(await readFile(nodePaths(cluster, 'node1').configFile, 'utf8')),
);
const helper = new CudaHelper(config.cudaHelper);
const rows: object[] = [];
try {
  console.log(
    `ferry GPU benchmark: ${sizes.join(', ')} MiB of GPU memory, helper ${config.cudaHelper.join(' ')}`,
  );
  for (const mib of sizes) {
    const bundle = await bundleOf(mib);
    const base = unique(`gpu-base-${mib}`);
    await startBundle(c, cluster, base, bundle);
    // The driver's calls as ferry makes them (agent/gpu/cuda-moves.ts), with nothing else around.
    const b = await inPlace(c, cluster, base, {
      beforeDump: async (pid) => void (await checkpointGpu(helper, [pid], GPU_LOCK_TIMEOUT_MS)),
      afterRestore: async (pid) => void (await resumeGpu(helper, [pid])),
    });
    const moved = unique(`gpu-move-${mib}`);
    await startBundle(c, cluster, moved, bundle);
    const m = await migrate(c, unique(`gpu-bench-${mib}`), { node: 'node1', container: moved }, 'node2', {
      strategy: { mode: 'StopAndCopy' },
    });
    if (m.status.phase !== 'Succeeded')
      throw new Error(`the move of ${mib} MiB failed: ${m.status.failureReason}`);
    await rm(bundle, { recursive: true, force: true });
    const v = await verify(c, 'node2', moved);
    if (!v.pass) throw new Error(`the moved workload failed its check: ${v.line}`);
    await c.bus.call('node2', { kind: 'remove', container: moved });
    const s = m.status.migrationState!;
    const row = {
      gpuMiB: mib,
      baseline: b,
      ferry: {
        downtimeMs: s.downtimeMs,
        gpuCheckpointMs: s.gpu?.checkpointMs,
        dumpMs: s.dumpMs,
        transferMs: s.transferMs,
        restoreMs: s.restoreMs,
        gpuRestoreMs: s.gpu?.restoreMs,
        gpuBytes: s.gpu?.bytes,
        imageBytes: s.imageBytes,
      },
      ratioDowntimeToBaseline: Number(((s.downtimeMs ?? 0) / b.totalMs).toFixed(2)),
    };
    rows.push(row);
    console.log(
      `${mib} MiB of GPU memory\n` +
        `  baseline: driver checkpoint ${secs(b.beforeDumpMs)}, dump ${secs(b.dumpMs)}, ` +
        `restore ${secs(b.restoreMs)}, driver restore ${secs(b.afterRestoreMs)}, total ${secs(b.totalMs)}\n` +
        `  ferry:    driver checkpoint ${secs(s.gpu?.checkpointMs)}, dump ${secs(s.dumpMs)}, ` +
        `transfer ${secs(s.transferMs)}, restore ${secs(s.restoreMs)}, driver restore ${secs(s.gpu?.restoreMs)}, ` +
        `downtime ${secs(s.downtimeMs)} = ${row.ratioDowntimeToBaseline}x the baseline's total; ` +
        `GPU memory moved ${((s.gpu?.bytes ?? 0) / 2 ** 30).toFixed(2)} GiB, images ${((s.imageBytes ?? 0) / 2 ** 30).toFixed(2)} GiB`,
    );
  }
  await writeResults('gpu', { helper: config.cudaHelper, rows });
} finally {
  await c.close();
}
