// The GPU check's workload started from its OCI bundle on node1 of the check's cluster, waited for
// until it says its memory is filled (its data/ready); shared by bench/gpu.ts and rollback.ts.
import { access } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '../../cli/client.ts';
import { nodePaths } from '../../lib/paths.ts';
import { until } from '../helpers.ts';

export async function startBundle(
  c: Client,
  cluster: string,
  container: string,
  bundle: string,
): Promise<void> {
  await c.bus.call('node1', { kind: 'runBundle', container, bundle, env: [], volumes: [] }, 600_000);
  const ready = path.join(nodePaths(cluster, 'node1').fsRoot, 'containers', container, 'rootfs/data/ready');
  const ok = await until(
    () =>
      access(ready).then(
        () => true,
        () => false,
      ),
    300_000,
  );
  if (!ok) throw new Error(`${container} did not fill its memory within 5 minutes`);
}
