import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { migratePod, type CheckpointedImage, type PodAgents, type PodApi } from './pod-migration.ts';
import { runningPod } from './fixtures.ts';

type Failing = 'freeze' | 'checkpoint' | 'send' | 'importImages' | 'create' | 'ready' | 'delete' | undefined;

/** In-memory Kubernetes and agents that log every call and fail where told. */
function world(fail: Failing) {
  const pods = new Map<string, V1Pod>([['shop/db', runningPod()]]);
  const log: string[] = [];
  const frozen = new Set<string>();
  const boom = (what: Failing) => {
    if (fail === what) throw new Error(`${what} broke`);
  };
  const api: PodApi = {
    get: async (ns, name) => structuredClone(pods.get(`${ns}/${name}`)),
    create: async (pod) => {
      log.push(`create ${pod.metadata!.name} on ${pod.spec!.nodeName}`);
      boom('create');
      // The target kubelet restores it: running and ready, unless told otherwise.
      const p = structuredClone(pod);
      p.status =
        fail === 'ready'
          ? {
              phase: 'Pending',
              containerStatuses: [
                {
                  name: 'db',
                  state: { waiting: { reason: 'CreateContainerError', message: 'criu failed' } },
                } as never,
              ],
            }
          : runningPod().status!;
      pods.set(`${pod.metadata!.namespace}/${pod.metadata!.name}`, p);
    },
    delete: async (ns, name) => {
      log.push(`delete ${name}`);
      if (name === 'db') boom('delete');
      pods.delete(`${ns}/${name}`);
    },
  };
  const agents: PodAgents = {
    freeze: async (node, cs) => {
      log.push(`freeze ${node}`);
      boom('freeze');
      cs.forEach((c) => frozen.add(c.id));
    },
    thaw: async (node, cs) => {
      log.push(`thaw ${node}`);
      cs.forEach((c) => frozen.delete(c.id));
    },
    checkpoint: async (node, req) => {
      log.push(`checkpoint ${node}`);
      boom('checkpoint');
      return req.containers.map((c): CheckpointedImage => ({
        container: c.name,
        ref: c.ref,
        file: `pod-images/${c.name}.tar`,
        bytes: 10,
      }));
    },
    send: async (node, target, images) => {
      log.push(`send ${node} -> ${target}`);
      boom('send');
      return images.length * 10;
    },
    importImages: async (node) => {
      log.push(`import ${node}`);
      boom('importImages');
    },
    removeImages: async (node) => void log.push(`remove images ${node}`),
    cleanup: async (node) => void log.push(`cleanup ${node}`),
  };
  const plan = {
    namespace: 'shop',
    pod: 'db',
    sourceNode: 'node1',
    targetNode: 'node2',
    migration: { name: 'move-db', uid: 'abcdef12-3456' },
  };
  let t = 0;
  const ports = { pods: api, agents, sleep: async () => void (t += 500), now: () => t };
  return { pods, log, frozen, plan, ports };
}

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
