// Preflight on real nodes: what CRIU cannot move is refused before anything is frozen, with its
// own reason; the CPU and space checks run on every migration and pass here.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '../cli/client.ts';
import { markEnded, markLive } from '../lib/live-migrations.ts';
import { CLUSTER, list, migrate, phases, testCluster, unique, verify } from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

test('a workload holding an unknown device is refused in preflight and keeps running', async () => {
  const container = unique('dev');
  await c.bus.call(
    'node1',
    {
      kind: 'run',
      container,
      memoryMiB: 8,
      intervalMs: 10,
      devices: ['/dev/loop-control'],
      open: ['/dev/loop-control'],
    },
    120_000,
  );
  const v0 = await verify(c, 'node1', container);
  const m = await migrate(c, unique('dev'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Failed');
  assert.deepEqual(phases(m), ['Pending', 'Preflight', 'Failed']);
  assert.match(
    m.status.failureReason!,
    /preflightSource on node1 failed: UnsupportedWorkload: container \S+ holds pid \d+ fd \d+: device \/dev\/loop-control/,
  );
  assert.equal((await list(c, 'node1')).find((x) => x.id === container)?.status, 'running', 'never frozen');
  const v = await verify(c, 'node1', container);
  assert.ok(v.pass && v.counter! > v0.counter!, v.line);
  await c.bus.call('node1', { kind: 'remove', container });
});

test('PreCopy is refused in preflight on a kernel without soft-dirty tracking, naming the check', async () => {
  const container = unique('pre');
  await c.bus.call('node1', { kind: 'run', container, memoryMiB: 8, intervalMs: 10 }, 120_000);
  const m = await migrate(c, unique('pre'), { node: 'node1', container }, 'node2', {
    strategy: { mode: 'PreCopy' },
  });
  assert.equal(m.status.phase, 'Failed');
  assert.match(
    m.status.failureReason!,
    /FeatureUnsupported: PreCopy needs soft-dirty memory tracking, and `criu check --feature mem_dirty_track` fails on node1/,
  );
  assert.equal((await list(c, 'node1')).find((x) => x.id === container)?.status, 'running');
  await c.bus.call('node1', { kind: 'remove', container });
});

test('the target refuses a CPU image it cannot match, and a workload it has no room for', async () => {
  const migration = { uid: 'cafe0000-0001', name: 'direct' };
  // Agents run jobs of live migrations only: this one is, as the controller would mark it.
  await markLive(c.redis, CLUSTER, { uid: migration.uid, source: 'node1', target: 'node2' });
  await assert.rejects(
    c.bus.call('node2', {
      kind: 'preflightTarget',
      migration,
      container: 'nothing-here',
      requirements: { cpuinfo: Buffer.from('not a cpuinfo image').toString('base64') },
    }),
    /CpuIncompatible: preflightTarget on node2: node2's CPU cannot run what the source's did: Error \(criu\/image\.c:\d+\): Head magic doesn't match for cpuinfo\.img/,
  );
  await assert.rejects(
    c.bus.call('node2', {
      kind: 'preflightTarget',
      migration,
      container: 'nothing-here',
      requirements: { memoryBytes: 100 * 2 ** 30 },
    }),
    /InsufficientSpace: preflightTarget on node2: images on node2: \d+ MiB free, \d+ MiB needed/,
  );
  await markEnded(c.redis, CLUSTER, migration.uid);
  // Once it ended, its jobs are refused without running, and not retried.
  await assert.rejects(
    c.bus.call('node2', { kind: 'preflightTarget', migration, container: 'nothing-here', requirements: {} }),
    /InvalidInput: preflightTarget on node2: migration direct has ended; its preflightTarget job is not run/,
  );
});
