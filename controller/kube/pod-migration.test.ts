import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { migratePod } from './pod-migration.ts';
import { world } from '../../test/fixtures/pods.ts';

describe('moving a pod (in-memory Kubernetes and agents)', () => {
  it('deletes the source pod only after the replacement runs', async () => {
    const w = world(undefined);
    const r = await migratePod(w.ports, w.plan);
    assert.equal(r.targetPod, 'db-abcde');
    assert.deepEqual(w.log, [
      'freeze node1',
      'checkpoint node1',
      'send node1 -> node2',
      'import node2',
      'create db-abcde on node2',
      'delete db',
      'cleanup node1',
      'cleanup node2',
    ]);
    assert.deepEqual([...w.pods.keys()], ['shop/db-abcde']);
    assert.deepEqual(r.warnings, []);
  });

  for (const fail of ['freeze', 'checkpoint', 'send', 'importImages', 'create', 'ready'] as const)
    it(`rolls back when ${fail} fails: no replacement, the source pod thawed and kept`, async () => {
      const w = world(fail);
      await assert.rejects(
        migratePod(w.ports, w.plan),
        fail === 'ready' ? /CreateContainerError \(criu failed\)/ : new RegExp(`${fail} broke`),
      );
      assert.deepEqual([...w.pods.keys()], ['shop/db'], 'exactly the source pod is left');
      assert.equal(w.frozen.size, 0, 'the source is not left frozen');
      assert.ok(!w.log.includes('delete db'), 'the source pod was never deleted');
      assert.equal(w.log.at(-1), 'thaw node1', 'thawing comes last');
      if (fail === 'create' || fail === 'ready') assert.ok(w.log.includes('remove images node2'));
    });

  it('keeps the running replacement when the source pod cannot be deleted, and says so', async () => {
    const w = world('delete');
    const r = await migratePod(w.ports, w.plan);
    assert.match(r.warnings[0]!, /source pod db stays frozen on node1/);
    assert.ok(w.pods.has('shop/db-abcde'));
  });

  it('refuses, before freezing anything, a pod on another node or one that cannot move', async () => {
    const w = world(undefined);
    await assert.rejects(migratePod(w.ports, { ...w.plan, sourceNode: 'node3' }), /runs on node1, not node3/);
    await assert.rejects(migratePod(w.ports, { ...w.plan, pod: 'nope' }), /pod shop\/nope does not exist/);
    w.pods.get('shop/db')!.spec!.volumes = [{ name: 'scratch', emptyDir: {} }];
    await assert.rejects(migratePod(w.ports, w.plan), /volume scratch is an emptyDir/);
    assert.deepEqual(w.log, []);
  });
});
