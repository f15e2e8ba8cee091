// The local cluster every benchmark runs on: its own name and subnet, so a benchmark never touches
// the demo's or the tests' nodes; roomy disks for the 1 GiB runs.
import { clusterUp } from '../cluster/cluster.ts';

export const BENCH_CLUSTER = 'bench';
export const BENCH_SUBNET = '10.79.0';

export const upBenchCluster = () =>
  clusterUp({
    name: BENCH_CLUSTER,
    nodes: 2,
    subnet: BENCH_SUBNET,
    faultHooks: false,
    diskGiB: 8,
    imagesGiB: 6,
  });
