// The local cluster every benchmark runs on: its own name and subnet, so a benchmark never touches
// the demo's or the tests' nodes; roomy disks for the 1 GiB runs.
import { clusterUp, readClusterConfig } from '../cluster/cluster.ts';
import { markLive } from '../lib/live-migrations.ts';
import { connectRedis } from '../lib/redis.ts';

export const BENCH_CLUSTER = 'bench';
export const BENCH_SUBNET = '10.79.0';
/** Node N's agent finds its fake kubelet at the bridge, this port + N (bench/pod-downtime.ts). */
export const BENCH_KUBELET_PORT_BASE = 10350;

export const upBenchCluster = () =>
  clusterUp({
    name: BENCH_CLUSTER,
    nodes: 2,
    subnet: BENCH_SUBNET,
    faultHooks: false,
    diskGiB: 8,
    imagesGiB: 6,
    kubeletPortBase: BENCH_KUBELET_PORT_BASE,
  });

/**
 * Lets `target` accept streams of the made-up migration `uid` from `source`, as the controller does
 * for a real one (lib/live-migrations.ts): benchmarks that drive a TransferSession need it.
 */
export async function expectBenchTransfer(
  cluster: string,
  t: { target: string; uid: string; source: string },
) {
  const config = await readClusterConfig(cluster);
  const redis = connectRedis(config!.redis);
  try {
    await markLive(redis, cluster, t);
  } finally {
    redis.disconnect();
  }
}
