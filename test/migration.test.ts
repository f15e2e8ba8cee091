// A real container migration between two local nodes: runc, CRIU, btrfs, SSH and Redis.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Client } from '../cli/client.ts';
import { nodePaths } from '../lib/paths.ts';
import {
  CLUSTER,
  leftovers,
  list,
  migrate,
  phases,
  runWorkload,
  testCluster,
  unique,
  verify,
} from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

test('moves a workload with state in memory and on disk, and it continues on the target', async () => {
  const container = unique('mover');
  await runWorkload(c, 'node1', container, 64);
  const before = await verify(c, 'node1', container);
  assert.ok(before.pass, before.line);

  const m = await migrate(c, unique('mig'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.deepEqual(phases(m), [
    'Pending',
    'Preflight',
    'Syncing',
    'Checkpointing',
    'Transferring',
    'Restoring',
    'Verifying',
    'CleaningUp',
    'Succeeded',
  ]);
  const s = m.status.migrationState!;
  assert.ok(s.downtimeMs! > 0, 'downtime is recorded');
  assert.ok(s.bytesDuringFreeze! > 64 * 1024 * 1024, 'the memory crossed the wire');
  assert.ok(s.bytesBeforeFreeze! > 0, 'the filesystem was sent before the freeze');
  assert.ok(s.throughputBytesPerSecond! > 0);

  // The workload checks its own memory and file on the target: counter went on, nothing lost.
  const afterMove = await verify(c, 'node2', container);
  assert.ok(afterMove.pass, afterMove.line);
  assert.ok(
    afterMove.counter! > before.counter!,
    `counter continued: ${before.counter} -> ${afterMove.counter}`,
  );

  // Exactly once: gone from the source, with nothing left behind on either node.
  assert.ok(!(await list(c, 'node1')).some((x) => x.id === container), 'source removed');
  assert.ok(
    !existsSync(nodePaths(CLUSTER, 'node1').fsRoot + `/containers/${container}`),
    'source bundle removed',
  );
  assert.deepEqual(await leftovers('node1', m.metadata.uid), []);
  assert.deepEqual(await leftovers('node2', m.metadata.uid), []);
  await c.bus.call('node2', { kind: 'remove', container });
});

test('moves it back again, so a node can be both source and target', async () => {
  const container = unique('pingpong');
  await runWorkload(c, 'node2', container, 16);
  const there = await migrate(c, unique('mig'), { node: 'node2', container }, 'node1');
  assert.equal(there.status.phase, 'Succeeded', there.status.failureReason);
  const back = await migrate(c, unique('mig'), { node: 'node1', container }, 'node2');
  assert.equal(back.status.phase, 'Succeeded', back.status.failureReason);
  const v = await verify(c, 'node2', container);
  assert.ok(v.pass, v.line);
  await c.bus.call('node2', { kind: 'remove', container });
});
