import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runningPod } from '../test/fixtures/pods.ts';
import { blockedBy, sortPods } from './drain-pods.ts';

test('a Kubernetes drain moves what can move, leaves the node’s own pods, and says why the rest stay', () => {
  const plain = runningPod({}, { name: 'cache-0' });
  const daemon = runningPod(
    {},
    {
      name: 'node-exporter-x',
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'node-exporter', uid: 'd', controller: true },
      ],
    },
  );
  const mirror = runningPod(
    {},
    { name: 'kube-proxy-n1', annotations: { 'kubernetes.io/config.mirror': 'abc' } },
  );
  const scratch = runningPod(
    { volumes: [{ name: 'logs', hostPath: { path: '/var/log' } }] },
    { name: 'builder' },
  );
  const done = runningPod({}, { name: 'job-1' });
  done.status!.phase = 'Succeeded';
  const { move, stay } = sortPods([plain, daemon, mirror, scratch, done]);
  assert.deepEqual(
    move.map((p) => p.metadata!.name),
    ['cache-0'],
  );
  assert.deepEqual(
    stay.map((s) => [s.pod, s.expected]),
    [
      ['shop/node-exporter-x', true],
      ['shop/kube-proxy-n1', true],
      ['shop/builder', false],
      ['shop/job-1', true],
    ],
  );
  assert.match(stay[2]!.reason, /volume logs is a hostPath/);
});

test('a budget that allows no disruption is named with its counts; one that allows one does not block', () => {
  const budget = (name: string, allowed: number) => ({
    name,
    disruptionsAllowed: allowed,
    currentHealthy: 2,
    desiredHealthy: 2 - allowed,
  });
  assert.equal(blockedBy('shop', [budget('web', 1)]), undefined);
  assert.equal(blockedBy('shop', []), undefined);
  assert.equal(
    blockedBy('shop', [budget('web', 1), budget('db', 0)]),
    'PodDisruptionBudget shop/db allows no disruption now (2 healthy, 2 required)',
  );
});
