import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkpointImageRef, replacementName, replacementPod, runtimeContainers } from './pod-spec.ts';
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

  it('refuses pods a controller owns, that share the node’s namespaces, or keep files on the node', () => {
    assert.equal(podProblem(runningPod()), undefined);
    assert.match(
      podProblem(
        runningPod(
          {},
          {
            ownerReferences: [
              { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'db-5d8', uid: 'x', controller: true },
            ],
          },
        ),
      )!,
      /managed by ReplicaSet db-5d8/,
    );
    assert.match(podProblem(runningPod({ hostNetwork: true }))!, /node's network/);
    assert.match(
      podProblem(runningPod({ volumes: [{ name: 'cache', emptyDir: {} }] }))!,
      /volume cache is an emptyDir/,
    );
    assert.match(
      podProblem(runningPod({ volumes: [{ name: 'logs', hostPath: { path: '/var/log' } }] }))!,
      /hostPath/,
    );
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
      images,
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
});
