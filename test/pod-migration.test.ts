// A pod moves between the test cluster's nodes through the Kubernetes pod path: a Migration with
// spec.source.pod, applied to the (fake) API server, is run by the controller's pod runner; the
// source agent freezes the pod's runc container, checkpoints it through the (fake) kubelet's
// checkpoint API, builds a checkpoint OCI image and sends it over SSH; the target agent imports it
// into its containers-storage with skopeo; the replacement pod is created bound to node2, where
// the fake kubelet restores it from the image (real CRIU); the source pod goes only then. The
// fakes are the API server and the kubelets with their CRI-O (test/fake-*.ts); the rest is real.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, CoreV1Api, type V1Pod, type V1Volume } from '@kubernetes/client-node';
import { connect, type Client } from '../cli/client.ts';
import { drainPods } from '../cli/drain-pods.ts';
import { KubePodApi } from '../lib/kube/pods.ts';
import { kubeletFiles, nodeImageStore } from '../cluster/cluster.ts';
import { checkpointImageRef } from '../controller/kube/pod-spec.ts';
import { podRunning } from '../lib/kube/pod-rules.ts';
import { loadKubeConfig } from '../lib/store/kube-store.ts';
import { exec } from '../lib/exec.ts';
import { fsLayout, nodePaths } from '../lib/paths.ts';
import type { FakeApiServer } from './fake-apiserver.ts';
import type { FakeCrio, FakeKubelet } from './fake-kubelet.ts';
import { startPodHarness, type PodHarness } from './pod-harness.ts';
import { CLUSTER, KUBELET_PORT_BASE, list, testCluster, unique, verify } from './helpers.ts';

const BRIDGE = '10.78.0.1';
let c: Client;
let h: PodHarness;
let api: FakeApiServer;
let core: CoreV1Api;
let kubeconfigFile: string;
let kubelets: Record<string, FakeKubelet>;

before(async () => {
  c = await testCluster();
  h = await startPodHarness(c, { cluster: CLUSTER, bridge: BRIDGE, portBase: KUBELET_PORT_BASE });
  ({ api, core, kubeconfigFile, kubelets } = h);
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

test('a ReplicaSet’s pod moves: the replacement joins it once it runs, the ReplicaSet removes the source, never fewer ready pods, none made', async () => {
  const app = unique('rs');
  const [moved, peer] = [`${app}-a`, `${app}-b`];
  const labels = { app };
  const id = await runningPod(moved, labels);
  await runningPod(peer, labels);
  // The ReplicaSet (apps/v1, its controller emulated by the fake API server) adopts both.
  const apps = loadKubeConfig(kubeconfigFile).makeApiClient(AppsV1Api);
  const template = {
    metadata: { labels },
    spec: { containers: [{ name: 'app', image: 'registry.example/counter:1' }] },
  };
  const rs = await apps.createNamespacedReplicaSet({
    namespace: 'default',
    body: { metadata: { name: app }, spec: { replicas: 2, selector: { matchLabels: labels }, template } },
  });
  const members = async () =>
    (await pods()).filter(
      (p) =>
        p.metadata!.labels?.app === app &&
        p.metadata!.ownerReferences?.some((o) => o.uid === rs.metadata!.uid),
    );
  assert.deepEqual((await members()).map((p) => p.metadata!.name).sort(), [moved, peer]);
  const logged = api.replicaSetLog.length;

  // The ReplicaSet's ready members, watched throughout the move.
  let fewest = Infinity;
  let watching = true;
  const watcher = (async () => {
    for (; watching; await sleep(20))
      fewest = Math.min(fewest, (await members()).filter((p) => podRunning(p).running).length);
  })();
  const m = await applyAndWait(unique('mprs'), moved);
  watching = false;
  await watcher;
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const target = m.status.migrationState!.targetPod!;
  assert.ok(fewest >= 2, `ready members never fewer than 2 (fewest seen: ${fewest})`);
  const done = api.replicaSetLog.slice(logged);
  assert.deepEqual(
    done,
    [{ type: 'delete', pod: moved }],
    'the ReplicaSet removed the source, and made no pod',
  );
  const now = await members();
  assert.deepEqual(now.map((p) => p.metadata!.name).sort(), [peer, target].sort());
  const r = now.find((p) => p.metadata!.name === target)!;
  assert.deepEqual(r.metadata!.labels, labels);
  assert.equal(r.metadata!.annotations!['ferry.dev/adopt'], undefined);
  assert.equal(r.spec!.nodeName, 'node2');
  const newId = r.status!.containerStatuses![0]!.containerID!.replace('cri-o://', '');
  assert.ok((await verify(c, 'node2', newId)).pass);
  for (let i = 0; i < 50 && (await list(c, 'node1')).some((x) => x.id === id); i++) await sleep(100);
  assert.ok(!(await list(c, 'node1')).some((x) => x.id === id), 'the source container is gone');
  await apps.deleteNamespacedReplicaSet({ namespace: 'default', name: app });
  for (const p of [peer, target]) await core.deleteNamespacedPod({ namespace: 'default', name: p });
});

test('a pod with a ReadWriteOnce claim is refused before anything is frozen; with a ReadWriteMany claim it moves, the claim mounted on node2', async () => {
  const claim = async (name: string, mode: string) =>
    core.createNamespacedPersistentVolumeClaim({
      namespace: 'default',
      body: {
        metadata: { name },
        spec: { accessModes: [mode], resources: { requests: { storage: '1Gi' } } },
      },
    });
  const [once, many] = [unique('rwo'), unique('rwx')];
  await claim(once, 'ReadWriteOnce');
  await claim(many, 'ReadWriteMany');
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

  const shared = unique('web');
  await runningPod(shared, { app: shared }, vol(many));
  // Sent at most 50 MiB/s, compressed.
  const moved = await applyAndWait(unique('mpc'), shared, { bandwidth: '50Mi', compression: 'Zstd' });
  assert.equal(moved.status.phase, 'Succeeded', moved.status.failureReason);
  const r = await core.readNamespacedPod({
    namespace: 'default',
    name: moved.status.migrationState!.targetPod!,
  });
  assert.equal(r.spec!.volumes?.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName, many);
  assert.equal(moved.status.warnings, undefined, 'bandwidth and Zstd apply to a pod’s images');
  await core.deleteNamespacedPod({ namespace: 'default', name: r.metadata!.name! });
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

test('ferry drain on Kubernetes moves the node’s pods, leaves its DaemonSet pods, and reports what cannot move', async () => {
  const movable = unique('web');
  await runningPod(movable);
  const stuck = unique('scratch');
  const containers = [{ name: 'app', image: 'x' }];
  await createPod(
    {
      metadata: { name: stuck },
      spec: { nodeName: 'node1', containers, volumes: [{ name: 'logs', hostPath: { path: '/var/log' } }] },
    },
    { phase: 'Running' },
  );
  const daemon = unique('agent');
  const owner = { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: 'd', controller: true };
  await createPod(
    { metadata: { name: daemon, ownerReferences: [owner] }, spec: { nodeName: 'node1', containers } },
    { phase: 'Running' },
  );
  const client = await connect(CLUSTER, kubeconfigFile);
  const lines: string[] = [];
  try {
    const podApi = new KubePodApi(loadKubeConfig(kubeconfigFile));
    const all = await podApi.onNode('node1');
    const report = await drainPods(
      {
        client,
        // Only this test's pods: earlier tests' pods are gone or elsewhere, but be exact.
        listPods: async () => all.filter((p) => [movable, stuck, daemon].includes(p.metadata!.name!)),
        podRunning: async (ns, name) => podRunning(await podApi.get(ns, name)).running,
      },
      'node1',
      { say: (l) => lines.push(l) },
    );
    assert.deepEqual(
      report.moved.map((m) => [m.container, m.to]),
      [[`default/${movable}`, 'node2']],
    );
    assert.deepEqual(
      report.failed.map((f) => f.container),
      [`default/${stuck}`],
    );
    assert.match(report.failed[0]!.reason, /volume logs is a hostPath/);
    assert.ok(
      lines.some((l) => l.includes(daemon) && /stays: part of DaemonSet agent/.test(l)),
      lines.join('\n'),
    );
    const left = (await podApi.onNode('node1')).map((p) => p.metadata!.name);
    assert.ok(left.includes(stuck) && left.includes(daemon) && !left.includes(movable));
  } finally {
    await client.close();
    for (const p of await pods())
      if ([stuck, daemon].includes(p.metadata!.name!) || p.metadata!.name!.startsWith(`${movable}-`))
        await core.deleteNamespacedPod({ namespace: 'default', name: p.metadata!.name! });
  }
});
