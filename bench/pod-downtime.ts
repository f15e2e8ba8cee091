// A pod's downtime through the pod path beside a local container's for the same memory, measured
// in the same run on the same two nodes: the same test workload program, as a ferry container moved
// StopAndCopy (its memory streamed during the freeze, its files pre-synced) and as a pod's
// container moved through the pod path (freeze, whole archive, send, import, create the
// replacement, wait for Ready). The pods run on a real containerd per node (the default; the agent
// dumps them, containerd restores them) or, with --runtime cri-o, as runc containers under the fake
// CRI-O (the kubelet checkpoint API). The Kubernetes API server and kubelets are the fakes of
// test/pod-harness.ts; CRIU, runc, containerd, the images and the transfer are real. Prints the
// ratio per size and writes bench/results/pod-downtime.json.
//
//   node --import tsx bench/pod-downtime.ts [--sizes 64,256] [--runs 3] [--runtime containerd|cri-o]
import { writeResults } from './results-file.ts';
import { parseArgs } from 'node:util';
import { connect } from '../cli/client.ts';
import { ms, table } from '../cli/format.ts';
import { clusterDown } from '../cluster/cluster.ts';
import { migrate, runWorkload, unique } from '../test/helpers.ts';
import { startPodHarness } from '../test/pod-harness.ts';
import {
  BENCH_CLUSTER as CLUSTER,
  BENCH_KUBELET_PORT_BASE,
  BENCH_SUBNET,
  upBenchCluster,
} from './bench-cluster.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '64,256' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
    runtime: { type: 'string', default: 'containerd' },
  },
});
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The phases a pod spends frozen, from the freeze to the replacement found running. */
const FROZEN = ['Checkpointing', 'Transferring', 'Restoring', 'Verifying'] as const;

/** How long each frozen phase lasted, from the Migration's phase timestamps. Pure. */
function frozenPhases(ts: Array<{ phase: string; time: string }>): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i + 1 < ts.length; i++)
    if ((FROZEN as readonly string[]).includes(ts[i]!.phase))
      out[ts[i]!.phase] = Date.parse(ts[i + 1]!.time) - Date.parse(ts[i]!.time);
  return out;
}

async function main() {
  const runtime = values.runtime;
  if (runtime !== 'containerd' && runtime !== 'cri-o')
    throw new Error(`--runtime: containerd or cri-o, not ${JSON.stringify(runtime)}`);
  await upBenchCluster();
  const c = await connect(CLUSTER);
  const h = await startPodHarness(c, {
    cluster: CLUSTER,
    bridge: `${BENCH_SUBNET}.1`,
    portBase: BENCH_KUBELET_PORT_BASE,
    runtime,
  });
  const results: Array<{
    memoryMiB: number;
    containerMs: number[];
    podMs: number[];
    ratio: number;
    /** Each pod move's frozen phases, in ms: where its downtime went. */
    podPhases: Array<Record<string, number>>;
  }> = [];
  try {
    for (const mib of values.sizes.split(',').map(Number)) {
      const containerMs: number[] = [];
      const podMs: number[] = [];
      const podPhases: Array<Record<string, number>> = [];
      for (let i = 0; i < Number(values.runs); i++) {
        const id = unique('ct');
        await runWorkload(c, 'node1', id, mib);
        const m = await migrate(c, unique('m-ct'), { node: 'node1', container: id }, 'node2', {
          strategy: { mode: 'StopAndCopy' },
        });
        if (m.status.phase !== 'Succeeded') throw new Error(`container move: ${m.status.failureReason}`);
        containerMs.push(m.status.migrationState!.downtimeMs!);
        await c.bus.call('node2', { kind: 'remove', container: id });

        const pod = unique('pod');
        await h.runningPod(pod, { memoryMiB: mib });
        const p = await h.applyAndWait(unique('m-pod'), pod);
        if (p.status.phase !== 'Succeeded') throw new Error(`pod move: ${p.status.failureReason}`);
        podMs.push(p.status.migrationState!.downtimeMs!);
        podPhases.push(frozenPhases(p.status.phaseTransitionTimestamps));
        await h.core.deleteNamespacedPod({ namespace: 'default', name: p.status.migrationState!.targetPod! });
      }
      results.push({
        memoryMiB: mib,
        containerMs,
        podMs,
        ratio: median(podMs) / median(containerMs),
        podPhases,
      });
    }
  } finally {
    await h.stop();
    await c.close();
    if (!values.keep) await clusterDown(CLUSTER);
  }
  console.log(
    table(
      ['MEMORY', 'CONTAINER DOWNTIME (median)', `POD DOWNTIME, ${runtime} (median)`, 'POD / CONTAINER'],
      results.map((r) => [
        `${r.memoryMiB} MiB`,
        ms(median(r.containerMs)),
        ms(median(r.podMs)),
        r.ratio.toFixed(2),
      ]),
    ),
  );
  console.log('\nwhere the pod downtime went (median ms of each frozen phase, as the controller saw it):');
  console.log(
    table(
      ['MEMORY', ...FROZEN],
      results.map((r) => [
        `${r.memoryMiB} MiB`,
        ...FROZEN.map((f) => String(median(r.podPhases.map((p) => p[f] ?? 0)))),
      ]),
    ),
  );
  await writeResults('pod-downtime', { date: new Date().toISOString(), runtime, results });
}

await main();
