// The README's main command: a 2-node local cluster, a workload with state in memory and on disk
// moved from node1 to node2, and the workload's own verdict that nothing was lost.
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobResult } from '../api/v1alpha1/job-results.ts';
import { API_VERSION, type MigrationInput } from '../api/v1alpha1/migration.ts';
import { clusterUp, type UpOptions } from '../cluster/cluster.ts';
import { connect, type Client } from './client.ts';
import { bytes, describe, ms, rate } from './format.ts';
import { waitForMigration } from './watch.ts';

type Verify = JobResult<'verify'>;

export async function verify(client: Client, node: string, container: string): Promise<Verify> {
  return client.bus.call(node, { kind: 'verify', container });
}

/** The demos' move: node1 to node2, Auto with room to spare. */
export const demoMigration = (name: string, container: string): MigrationInput => ({
  apiVersion: API_VERSION,
  kind: 'Migration',
  metadata: { name, namespace: 'default' },
  // On a slow machine the estimate must not refuse the demo's move (a freeze estimated above
  // maxDowntime is refused by default: spec.strategy.overBudget).
  spec: { source: { node: 'node1', container }, target: { node: 'node2' }, strategy: { maxDowntime: '10s' } },
});

export interface DemoOptions {
  up: UpOptions;
  memoryMiB: number;
  say: (line: string) => void;
}

export async function demo(opts: DemoOptions): Promise<boolean> {
  const { say } = opts;
  const container = 'demo-workload';
  const name = 'demo';
  say('== 1. Local cluster');
  await clusterUp(opts.up);
  const client = await connect(opts.up.name);
  try {
    // A re-run starts from a clean slate: no old demo container or Migration.
    for (const node of client.config.nodes) await client.bus.call(node, { kind: 'remove', container });
    await client.store.delete('default', name); // an old demo Migration has ended: it goes at once

    say(
      `\n== 2. Workload on node1: ${opts.memoryMiB} MiB of state in memory, a counter appended to /data/counter.log`,
    );
    const run = { kind: 'run' as const, container, memoryMiB: opts.memoryMiB, intervalMs: 20 };
    const info = await client.bus.call('node1', run, 300_000);
    say(`  ${container} running on node1 (pid ${info.pid})`);
    await sleep(2000);
    const before = await verify(client, 'node1', container);
    say(`  self-check on node1: ${before.line}`);
    if (!before.pass) return false;

    say('\n== 3. Migration node1 -> node2');
    await client.store.create(demoMigration(name, container));
    const done = await waitForMigration(client, 'default', name, say);
    say('');
    say(describe(done));
    if (done.status.phase !== 'Succeeded') {
      say(`\nFAIL: the migration ended ${done.status.phase}: ${done.status.failureReason ?? ''}`);
      return false;
    }

    say('\n== 4. The workload checks itself on node2');
    const after = await verify(client, 'node2', container);
    say(`  self-check on node2: ${after.line}`);
    await sleep(1000);
    const later = await verify(client, 'node2', container);
    say(`  one second later:    ${later.line}`);
    const left = await client.bus.call('node1', { kind: 'list' });
    const continued =
      after.pass &&
      later.pass &&
      (after.counter ?? 0) > (before.counter ?? 0) &&
      (later.counter ?? 0) > (after.counter ?? 0);
    const once = !left.some((c) => c.id === container);
    say(`  node1 still holds the workload: ${once ? 'no' : 'YES'}`);
    const s = done.status.migrationState;
    say('');
    say(
      `${continued && once ? 'PASS' : 'FAIL'}: moved ${opts.memoryMiB} MiB of memory and its files; downtime ${ms(s?.downtimeMs)}, ` +
        `${bytes((s?.bytesBeforeFreeze ?? 0) + (s?.bytesDuringFreeze ?? 0))} sent, ${rate(s?.throughputBytesPerSecond)} during the freeze; ` +
        `counter ${before.counter} -> ${after.counter} -> ${later.counter}`,
    );
    say(
      '\nLook around: ferry get migrations · ferry describe migration demo · ferry ps · ferry cluster down',
    );
    return continued && once;
  } finally {
    await client.close();
  }
}
