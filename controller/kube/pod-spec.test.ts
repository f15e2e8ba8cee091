import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ADOPT,
  adopted,
  checkpointImageRef,
  COST_WAS,
  DELETION_COST,
  LOWEST_COST,
  replacementName,
  replacementPod,
  runtimeContainers,
  withDeletionCost,
} from './pod-spec.ts';
import { podProblem, podRunning } from '../../lib/kube/pod-rules.ts';
import { runningPod } from '../../test/fixtures/pods.ts';

describe('the pod path: which pods move, and their replacement', () => {
  it('finds each container’s runtime id, and refuses one that is not running', () => {
    assert.deepEqual(runtimeContainers(runningPod()), [
      { name: 'db', runtime: 'containerd', id: 'a'.repeat(64) },
      { name: 'exporter', runtime: 'containerd', id: 'b'.repeat(64) },
    ]);
    const p = runningPod();
    p.status!.containerStatuses![1]!.state = { waiting: { reason: 'CrashLoopBackOff' } };
    assert.throws(() => runtimeContainers(p), /container exporter of pod shop\/db is not running/);
    const docker = runningPod();
    docker.status!.containerStatuses![0]!.containerID = 'docker://' + 'c'.repeat(64);
    assert.throws(() => runtimeContainers(docker), /runs in docker/);
  });

  it('refuses pods a controller owns (but a ReplicaSet), that share the node’s namespaces, or keep files on the node', () => {
    assert.equal(podProblem(runningPod()), undefined);
    const owned = (kind: string) =>
      podProblem(
        runningPod(
          {},
          { ownerReferences: [{ apiVersion: 'apps/v1', kind, name: 'db-5d8', uid: 'x', controller: true }] },
        ),
      );
    assert.equal(owned('ReplicaSet'), undefined);
    assert.match(owned('Job')!, /pod of Job db-5d8, which counts its pods by uid/);
    assert.equal(owned('StatefulSet'), undefined, 'a StatefulSet’s pod moves with its name');
    assert.match(owned('DaemonSet')!, /one on every node by design/);
    assert.match(
      owned('CronTab')!,
      /managed by CronTab db-5d8, which ferry does not know how to hand a pod over to/,
    );
    assert.match(podProblem(runningPod({ hostNetwork: true }))!, /node's network/);
    assert.equal(
      podProblem(runningPod({ volumes: [{ name: 'cache', emptyDir: {} }] })),
      undefined,
      'an emptyDir moves with its pod',
    );
    assert.match(
      podProblem(runningPod({ volumes: [{ name: 'logs', hostPath: { path: '/var/log' } }] }))!,
      /hostPath/,
    );
    // A GPU pod is refused by name until the pod path drives the CUDA driver (README: GPU workloads).
    const gpu = runningPod();
    gpu.spec!.containers[0]!.resources = { limits: { 'nvidia.com/gpu': '1' } };
    assert.match(podProblem(gpu)!, /container db asks for nvidia\.com\/gpu: GPU pods are not moved yet/);
    gpu.spec!.containers[0]!.resources = { limits: { 'nvidia.com/mig-1g.10gb': '1', memory: '1Gi' } };
    assert.match(podProblem(gpu)!, /asks for nvidia\.com\/mig-1g\.10gb/);
    gpu.spec!.containers[0]!.resources = { limits: { memory: '1Gi', cpu: '2' } };
    assert.equal(podProblem(gpu), undefined);
    const pending = runningPod();
    pending.status!.phase = 'Pending';
    assert.match(podProblem(pending)!, /is Pending, not Running/);
  });

  it('writes the replacement: bound to the target, checkpoint images never pulled, no init containers', () => {
    const images = {
      db: checkpointImageRef('9f1c2d3e-aaaa', 'db'),
      exporter: checkpointImageRef('9f1c2d3e-aaaa', 'exporter'),
    };
    assert.equal(images.db, 'localhost/ferry-checkpoint/db:9f1c2d3eaaaa');
    const r = replacementPod(runningPod(), {
      targetNode: 'node2',
      migration: 'move-db',
      migrationUid: '9f1c2d3e-aaaa',
    });
    assert.equal(r.metadata!.name, 'db-9f1c2');
    assert.equal(r.metadata!.namespace, 'shop');
    assert.deepEqual(r.metadata!.labels, { app: 'db' });
    assert.deepEqual(r.metadata!.annotations, {
      team: 'data',
      'ferry.dev/migrated-from': 'node1/db',
      'ferry.dev/migration': 'move-db',
    });
    assert.equal(r.metadata!.uid, undefined);
    assert.equal(r.metadata!.resourceVersion, undefined);
    assert.equal(r.status, undefined);
    assert.equal(r.spec!.nodeName, 'node2');
    assert.equal(r.spec!.nodeSelector, undefined);
    assert.equal(r.spec!.initContainers, undefined);
    assert.deepEqual(
      r.spec!.containers.map((c) => [c.name, c.image, c.imagePullPolicy]),
      [
        ['db', images.db, 'Never'],
        ['exporter', images.exporter, 'Never'],
      ],
    );
    assert.deepEqual(r.spec!.volumes, [{ name: 'data', persistentVolumeClaim: { claimName: 'db-data' } }]);
    assert.equal(replacementName('x'.repeat(70), 'abcde').length, 63);
  });

  it('says whether the replacement runs, and why not when it cannot', () => {
    assert.deepEqual(podRunning(runningPod()), { running: true });
    const starting = runningPod();
    starting.status!.conditions = [{ type: 'Ready', status: 'False' }];
    assert.deepEqual(podRunning(starting), { running: false });
    const bad = runningPod();
    bad.status!.containerStatuses![0]!.state = {
      waiting: { reason: 'CreateContainerError', message: 'restore failed' },
    };
    assert.match(podRunning(bad).problem!, /container db: CreateContainerError \(restore failed\)/);
    assert.match(podRunning(undefined).problem!, /gone/);
  });

  it('holds back a ReplicaSet pod’s labels and owner until its replacement runs, then hands them over', () => {
    const owner = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      name: 'web-7c9',
      uid: 'rs-1',
      controller: true,
    };
    const source = runningPod({}, { labels: { app: 'web', tier: 'front' }, ownerReferences: [owner] });
    source.metadata!.annotations = { [DELETION_COST]: '5' };
    const r = replacementPod(source, {
      targetNode: 'node2',
      migration: 'm',
      migrationUid: 'u-1',
    });
    assert.equal(r.metadata!.labels, undefined, 'not counted by the ReplicaSet yet');
    assert.equal(r.metadata!.ownerReferences, undefined);
    assert.equal(r.metadata!.annotations![DELETION_COST], undefined, 'the source’s cost stays with it');
    const joined = adopted(r)!;
    assert.deepEqual(joined.metadata!.labels, { app: 'web', tier: 'front' });
    assert.deepEqual(joined.metadata!.ownerReferences, [owner]);
    assert.equal(joined.metadata!.annotations![ADOPT], undefined);
    assert.equal(adopted(joined), undefined, 'once only');
    assert.equal(
      adopted(
        replacementPod(runningPod(), {
          targetNode: 'n',
          migration: 'm',
          migrationUid: 'u',
        }),
      ),
      undefined,
      'a bare pod keeps its labels from the start',
    );

    // The source: the lowest cost while the ReplicaSet scales down, its own back on rollback.
    const cheap = withDeletionCost(source, true)!;
    assert.equal(cheap.metadata!.annotations![DELETION_COST], LOWEST_COST);
    assert.equal(cheap.metadata!.annotations![COST_WAS], '5');
    assert.equal(withDeletionCost(cheap, true), undefined);
    const back = withDeletionCost(cheap, false)!;
    assert.deepEqual(back.metadata!.annotations, { [DELETION_COST]: '5' });
    const none = withDeletionCost(withDeletionCost(runningPod(), true)!, false)!;
    assert.deepEqual(none.metadata!.annotations, { team: 'data' });
  });
});
