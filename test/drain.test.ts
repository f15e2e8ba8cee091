// `ferry drain`: every workload leaves the node; one that cannot move (it holds a device ferry
// does not know) is reported with its reason and keeps running where it was.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '../cli/client.ts';
import { drain } from '../cli/drain.ts';
import { list, runWorkload, testCluster, unique, verify } from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

test('a drain moves every workload off the node and reports the one that cannot move', async () => {
  const movable = [unique('drain-a'), unique('drain-b')];
  for (const id of movable) await runWorkload(c, 'node1', id, 8);
  const stuck = unique('drain-dev');
  await c.bus.call(
    'node1',
    {
      kind: 'run',
      container: stuck,
      memoryMiB: 8,
      intervalMs: 10,
      devices: ['/dev/loop-control'],
      open: ['/dev/loop-control'],
    },
    120_000,
  );
  const mine = new Set([...movable, stuck]);
  const lines: string[] = [];
  const report = await drain(c, 'node1', { say: (l) => lines.push(l), select: (id) => mine.has(id) });
  assert.deepEqual(
    report.moved.map((m) => [m.container, m.to]).sort(),
    movable.map((id) => [id, 'node2']).sort(),
  );
  assert.equal(report.failed.length, 1);
  assert.equal(report.failed[0]!.container, stuck);
  assert.match(report.failed[0]!.reason, /UnsupportedWorkload: .*\/dev\/loop-control/);
  assert.equal(report.failed[0]!.runningOnSource, true, 'never left stopped');
  assert.match(lines.at(-1)!, /node1: 2 moved, 1 could not move/);
  for (const id of movable) {
    assert.ok((await verify(c, 'node2', id)).pass, `${id} checks itself on node2`);
    await c.bus.call('node2', { kind: 'remove', container: id });
  }
  assert.equal((await list(c, 'node1')).find((x) => x.id === stuck)?.status, 'running');
  await c.bus.call('node1', { kind: 'remove', container: stuck });
});
