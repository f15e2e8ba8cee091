// A pod moves between the test cluster's nodes through the Kubernetes pod path: a Migration with
// spec.source.pod, applied to the (fake) API server, is run by the controller's pod runner; the
// source agent freezes the pod's runc container, checkpoints it through the (fake) kubelet's
// checkpoint API, builds a checkpoint OCI image and sends it over SSH; the target agent imports it
// into its containers-storage with skopeo; the replacement pod is created bound to node2, where
// the fake kubelet restores it from the image (real CRIU); the source pod goes only then. The
// fakes are the API server and the kubelets with their CRI-O (test/fake-*.ts); the rest is real.
// What needs the runtime's own restore (ReplicaSets, claims, emptyDirs, StatefulSets) runs on a
// real containerd in test/containerd-pods.test.ts; what stays here is CRI-O's path (the kubelet's
// checkpoint API), refusals made before anything is frozen, and the kubelet API's own checks.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api, V1Pod, V1Volume } from '@kubernetes/client-node';
import type { Client } from '../cli/client.ts';
import { kubeletFiles, nodeImageStore } from '../cluster/cluster.ts';
import { checkpointImageRef } from '../controller/kube/pod-spec.ts';
import { exec } from '../lib/exec.ts';
import { fsLayout, nodePaths } from '../lib/paths.ts';
import type { FakeCrio, FakeKubelet } from './fake-kubelet.ts';
import { startPodHarness, type PodHarness } from './pod-harness.ts';
import { CLUSTER, KUBELET_PORT_BASE, list, testCluster, unique, verify } from './helpers.ts';

const BRIDGE = '10.78.0.1';
let c: Client;
let h: PodHarness;
let core: CoreV1Api;
let kubelets: Record<string, FakeKubelet>;

before(async () => {
  c = await testCluster();
  h = await startPodHarness(c, { cluster: CLUSTER, bridge: BRIDGE, portBase: KUBELET_PORT_BASE });
  ({ core, kubelets } = h);
});
after(async () => {
  await h.stop();
  await c.close();
});

/** A pod running on node1 as the API server shows it: its container is a real runc container. */
const runningPod = (name: string, labels: Record<string, string> = { app: name }, volumes: V1Volume[] = []) =>
  h.runningPod(name, { labels, volumes });
const createPod = (body: V1Pod, status: V1Pod['status']) => h.createPod(body, status);
const applyAndWait = (name: string, pod: string, strategy: Record<string, string> = {}) =>
  h.applyAndWait(name, pod, strategy);

const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: 'default' })).items;
/** Whether a node's image store holds the migration's checkpoint image of container "app". */
const hasImage = async (node: string, uid: string): Promise<boolean> => {
  const st = nodeImageStore(CLUSTER, node);
  const ref = checkpointImageRef(uid, 'app');
  const r = await exec('skopeo', [
    'inspect',
    '--raw',
    `containers-storage:[${st.driver}@${st.root}+${st.runRoot}]${ref}`,
  ]);
  return r.code === 0;
};
const migrationFolder = (node: string, uid: string) =>
  readdir(fsLayout(nodePaths(CLUSTER, node).fsRoot, nodePaths(CLUSTER, node).imagesDir).images(uid)).catch(
    () => [],
  );

test('a pod moves to node2: checkpoint image, replacement pod, source pod deleted only then', async () => {
  const pod = unique('web');
  const id = await runningPod(pod);
  const before = await verify(c, 'node1', id);
  const m = await applyAndWait(unique('mp'), pod);
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.deepEqual(
    m.status.phaseTransitionTimestamps.map((t) => t.phase),
    [
      'Pending',
      'Preflight',
      'Checkpointing',
      'Transferring',
      'Restoring',
      'Verifying',
      'CleaningUp',
      'Succeeded',
    ],
  );
  const s = m.status.migrationState!;
  assert.equal(s.sourcePod, pod);
  assert.ok(s.targetPod?.startsWith(`${pod}-`));
  assert.ok(s.downtimeMs! > 0 && s.bytesDuringFreeze! > 0, JSON.stringify(s));

  // Exactly one pod, the replacement, running on node2 from a checkpoint image never pulled.
  const left = (await pods()).filter((p) => p.metadata!.name!.startsWith(pod));
  assert.deepEqual(
    left.map((p) => p.metadata!.name),
    [s.targetPod],
  );
  const r = left[0]!;
  assert.equal(r.spec!.nodeName, 'node2');
  assert.equal(r.status!.phase, 'Running');
  assert.equal(r.metadata!.annotations!['ferry.dev/migrated-from'], `node1/${pod}`);
  assert.match(r.spec!.containers[0]!.image!, /^localhost\/ferry-checkpoint\/app:/);
  assert.equal(r.spec!.containers[0]!.imagePullPolicy, 'Never');

  // The workload went on counting from where it was, on node2; nothing is left on node1.
  const newId = r.status!.containerStatuses![0]!.containerID!.replace('cri-o://', '');
  const after = await verify(c, 'node2', newId);
  assert.ok(after.pass && after.counter! > before.counter!, after.line);
  for (let i = 0; i < 50 && (await list(c, 'node1')).some((x) => x.id === id); i++) await sleep(100);
  assert.ok(!(await list(c, 'node1')).some((x) => x.id === id), 'the source container is gone');
  assert.ok(await hasImage('node2', m.metadata.uid), 'the checkpoint image stays while its pod runs');
  assert.deepEqual(await migrationFolder('node1', m.metadata.uid), []);
  assert.deepEqual(await migrationFolder('node2', m.metadata.uid), []);
  await core.deleteNamespacedPod({ namespace: 'default', name: s.targetPod! });
});

test('a pod with a ReadWriteOnce claim is refused before anything is frozen', async () => {
  const claim = async (name: string, mode: string) =>
    core.createNamespacedPersistentVolumeClaim({
      namespace: 'default',
      body: {
        metadata: { name },
        spec: { accessModes: [mode], resources: { requests: { storage: '1Gi' } } },
      },
    });
  const once = unique('rwo');
  await claim(once, 'ReadWriteOnce');
  const vol = (claimName: string) => [{ name: 'data', persistentVolumeClaim: { claimName } }];

  const pinned = unique('web');
  const id = await runningPod(pinned, { app: pinned }, vol(once));
  const refused = await applyAndWait(unique('mpc'), pinned);
  assert.equal(refused.status.phase, 'Failed');
  assert.match(
    refused.status.failureReason ?? '',
    new RegExp(
      `UnsupportedWorkload: .*volume data is PersistentVolumeClaim ${once} \\(ReadWriteOnce\\), which attaches to one node at a time`,
    ),
  );
  assert.ok(!refused.status.phaseTransitionTimestamps.some((t) => t.phase === 'Checkpointing'));
  assert.equal((await list(c, 'node1')).find((x) => x.id === id)?.status, 'running', 'never frozen');
  await core.deleteNamespacedPod({ namespace: 'default', name: pinned });
});

test('a replacement that cannot be restored rolls back: no replacement, the source pod thawed and intact', async () => {
  const pod = unique('web');
  const id = await runningPod(pod);
  (kubelets.node2!.runtime as FakeCrio).failRestores = true;
  try {
    const m = await applyAndWait(unique('mpf'), pod);
    assert.equal(m.status.phase, 'Failed');
    assert.match(
      m.status.failureReason ?? '',
      /^Verifying: CriuRestoreFailed: .*CreateContainerError \(.*criu failed/,
    );
    assert.ok(m.status.phaseTransitionTimestamps.some((t) => t.phase === 'RollingBack'));
    const left = (await pods()).filter((p) => p.metadata!.name!.startsWith(pod));
    assert.deepEqual(
      left.map((p) => p.metadata!.name),
      [pod],
      'only the source pod is left',
    );
    const st = (await list(c, 'node1')).find((x) => x.id === id);
    assert.equal(st?.status, 'running', 'the source container is thawed');
    const v = await verify(c, 'node1', id);
    assert.ok(v.pass, v.line);
    assert.ok(!(await hasImage('node2', m.metadata.uid)), 'the checkpoint image is removed');
    assert.deepEqual(await migrationFolder('node2', m.metadata.uid), []);
    await core.deleteNamespacedPod({ namespace: 'default', name: pod });
  } finally {
    (kubelets.node2!.runtime as FakeCrio).failRestores = false;
  }
});

test('a pod that cannot move is refused before anything is frozen, saying why', async () => {
  const pod = unique('web');
  const owner = { apiVersion: 'batch/v1', kind: 'Job', name: 'report-7d9', uid: 'x', controller: true };
  await createPod(
    {
      metadata: { name: pod, ownerReferences: [owner] },
      spec: { nodeName: 'node1', containers: [{ name: 'app', image: 'x' }] },
    },
    { phase: 'Running' },
  );
  const m = await applyAndWait(unique('mpr'), pod);
  assert.equal(m.status.phase, 'Failed');
  assert.match(
    m.status.failureReason ?? '',
    /UnsupportedWorkload: .*is a pod of Job report-7d9, which counts/,
  );
  assert.ok(!m.status.phaseTransitionTimestamps.some((t) => t.phase === 'Checkpointing'));
  await core.deleteNamespacedPod({ namespace: 'default', name: pod });
});

test('the kubelet checkpoint API refuses a wrong token and unknown pods, as the kubelet does', async () => {
  const { checkpointContainer } = await import('../agent/kube/kubelet.ts');
  const files = kubeletFiles(CLUSTER);
  const { readFile } = await import('node:fs/promises');
  const endpoint = { address: BRIDGE, port: KUBELET_PORT_BASE + 1, ca: await readFile(files.ca) };
  await assert.rejects(
    checkpointContainer(
      { ...endpoint, token: 'wrong' },
      { namespace: 'default', pod: 'x', container: 'app' },
    ),
    /AuthRefused: .*401.*nodes\/checkpoint/,
  );
  const token = (await readFile(files.token, 'utf8')).trim();
  await assert.rejects(
    checkpointContainer({ ...endpoint, token }, { namespace: 'default', pod: 'nope', container: 'app' }),
    /ContainerNotFound: .*pod does not exist/,
  );
  // A kubelet whose certificate nobody vouched for is not trusted by default.
  await assert.rejects(
    checkpointContainer(
      { address: BRIDGE, port: KUBELET_PORT_BASE + 1, token },
      { namespace: 'default', pod: 'x', container: 'app' },
    ),
    /TransferFailed: cannot reach the kubelet.*self.signed/i,
  );
});
