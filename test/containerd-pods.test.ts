// Pods on a REAL containerd (2.1, one per test node, driven over CRI by the fake kubelet: the API
// server and the kubelet are the fakes here, test/pod-harness.ts). A pod moves between the test
// cluster's nodes: its emptyDirs go ahead while it runs, the source agent freezes its container
// under containerd's runc root and dumps it into containerd's checkpoint archive layout
// (agent/kube/containerd-dump.ts) with its pages streamed to node2 as CRIU dumps, node2's agent
// builds the image from what arrived and imports it with ctr, and node2's containerd restores it
// when the kubelet creates the replacement pod from that image. Also: an archive containerd's CheckpointContainer
// wrote (the kubelet's checkpoint API) is read by ferry and restored by containerd from ferry's
// image of it, checkpointctl reads ferry's archive, and a restore containerd refuses rolls back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppsV1Api, PolicyV1Api, type CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { connect, type Client } from '../cli/client.ts';
import { drainPods } from '../cli/drain-pods.ts';
import { kubeletFiles, nodeContainerd } from '../cluster/cluster.ts';
import {
  buildCheckpointImage,
  checkpointAnnotations,
  importCommand,
} from '../agent/kube/checkpoint-image.ts';
import { dumpContainerdContainer } from '../agent/kube/containerd-dump.ts';
import { checkpointContainer } from '../agent/kube/kubelet.ts';
import { Runc } from '../agent/runtime/runc.ts';
import { KubeNodeSchema } from '../api/v1alpha1/cluster.ts';
import { exec, run } from '../lib/exec.ts';
import { podRunning } from '../lib/kube/pod-rules.ts';
import { KubePodApi } from '../lib/kube/pods.ts';
import { KubeNodeApi } from '../lib/kube/nodes.ts';
import { API_VERSION, TERMINAL_PHASES } from '../api/v1alpha1/migration.ts';
import { FERRY_OPT } from '../lib/paths.ts';
import { startPodHarness, type PodHarness } from './pod-harness.ts';
import { CLUSTER, KUBELET_PORT_BASE, unique, upTestCluster } from './helpers.ts';
import { COUNTER_IMAGE } from './containerd-node.ts';
import type { ContainerdRuntime } from './cri-runtime.ts';

const BRIDGE = '10.78.0.1';
/** Longer than the controller keeps the Nodes it read (controller/controller.ts, NODES_FRESH_MS). */
const NODES_SEEN_MS = 1500;
const CRIU = path.join(FERRY_OPT, 'bin/criu');
let c: Client;
let h: PodHarness;
let core: CoreV1Api;

before(async () => {
  await upTestCluster();
  c = await connect(CLUSTER);
  h = await startPodHarness(c, {
    cluster: CLUSTER,
    bridge: BRIDGE,
    portBase: KUBELET_PORT_BASE,
    runtime: 'containerd',
  });
  core = h.core;
});
after(async () => {
  await h.stop();
  await c.close();
});

const runc = (node: string) => new Runc(nodeContainerd(CLUSTER, node).runcRoot, CRIU);
const cri = (node: string) => (h.kubelets[node]!.runtime as ContainerdRuntime).cri;
const pods = async (): Promise<V1Pod[]> => (await core.listNamespacedPod({ namespace: 'default' })).items;

/** The test workload's own check (workload/workload.c), asked of the process in a containerd container. */
async function selfCheck(node: string, id: string): Promise<{ pass: boolean; line: string }> {
  const st = await runc(node).state(id);
  assert.ok(st?.pid, `container ${id} runs on ${node}`);
  const file = `/proc/${st.pid}/root/data/verify.txt`;
  await rm(file, { force: true });
  process.kill(st.pid, 'SIGUSR1');
  for (let i = 0; i < 100; i++) {
    const line = (await readFile(file, 'utf8').catch(() => '')).trim();
    if (line) return { pass: line.startsWith('PASS'), line };
    await sleep(50);
  }
  throw new Error(`no verdict from ${id} on ${node}`);
}

/** The counter the workload last wrote (its counter.log's last line). */
async function counter(node: string, id: string): Promise<number> {
  const st = await runc(node).state(id);
  const log = await readFile(`/proc/${st!.pid}/root/data/counter.log`, 'utf8');
  return Number(log.trim().split('\n').pop());
}

const podOn = async (name: string) => core.readNamespacedPod({ namespace: 'default', name });

/** Removes the counter image from a node's containerd under every name (its tag, its digest). */
async function forgetCounterImage(node: string): Promise<void> {
  const c = nodeContainerd(CLUSTER, node);
  const ctr = ['--address', c.socket, '--namespace', 'k8s.io', 'images'];
  const refs = (await run(c.ctr, [...ctr, 'ls', '-q']))
    .split('\n')
    .filter((r) => r.startsWith(COUNTER_IMAGE.replace(/:1$/, '')));
  if (refs.length) await run(c.ctr, [...ctr, 'rm', ...refs]);
}

test('a containerd pod moves to node2 with its memory and files; containerd restores it there', async () => {
  const pod = unique('ctrd');
  const id = await h.runningPod(pod, { memoryMiB: 32 });
  await sleep(1500);
  const before = await counter('node1', id);
  const m = await h.applyAndWait(unique('mc'), pod);
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  // Its memory crossed while CRIU dumped: the page stream alone carried more than the 32 MiB.
  const st = m.status.migrationState!;
  assert.match(st.modeReason!, /memory streamed to the target while CRIU dumps/);
  assert.ok((st.bytesDuringFreeze ?? 0) > 32 * 2 ** 20, `${st.bytesDuringFreeze} bytes while frozen`);
  const moved = await podOn(st.targetPod!);
  assert.equal(moved.spec!.nodeName, 'node2');
  const cid = moved.status!.containerStatuses![0]!.containerID!;
  assert.match(cid, /^containerd:\/\/[0-9a-f]{64}$/);
  const newId = cid.replace('containerd://', '');
  const status = await cri('node2').containerStatus(newId);
  assert.equal(status.state, 'CONTAINER_RUNNING');
  assert.equal(status.annotations.restored, 'true', 'containerd says it restored the container');
  const v = await selfCheck('node2', newId);
  assert.ok(v.pass, v.line);
  assert.ok((await counter('node2', newId)) >= before, 'the counter went on from where it stopped');
  assert.ok(!(await pods()).some((p) => p.metadata!.name === pod), 'the source pod is gone');
  // The kubelet removes the deleted pod's containers on its next pass.
  for (let i = 0; i < 100 && (await runc('node1').state(id)); i++) await sleep(100);
  assert.equal(await runc('node1').state(id), undefined, 'its container is gone from node1');
  await core.deleteNamespacedPod({ namespace: 'default', name: moved.metadata!.name! });
});

test('an emptyDir moves with its pod: written into the replacement’s folder before it may start', async () => {
  const pod = unique('ctrd');
  // The workload keeps its counter log in the emptyDir: its check on node2 needs every line there.
  const id = await h.runningPod(pod, {
    volumes: [{ name: 'state', emptyDir: {} }],
    mounts: [{ name: 'state', mountPath: '/data' }],
  });
  await sleep(1000);
  const source = await podOn(pod);
  const m = await h.applyAndWait(unique('me'), pod);
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  // Sent whole while it ran (Syncing), then what changed while it was frozen.
  const phases = m.status.phaseTransitionTimestamps.map((t) => t.phase);
  assert.deepEqual(phases.slice(phases.indexOf('Preflight'), phases.indexOf('Checkpointing') + 1), [
    'Preflight',
    'Syncing',
    'Checkpointing',
  ]);
  assert.ok((m.status.migrationState!.bytesBeforeFreeze ?? 0) > 0, 'the emptyDir went ahead of the freeze');
  const moved = await podOn(m.status.migrationState!.targetPod!);
  assert.equal(moved.spec!.nodeName, 'node2', 'bound once its gate was lifted');
  assert.equal(moved.spec!.schedulingGates, undefined);
  const newId = moved.status!.containerStatuses![0]!.containerID!.replace('containerd://', '');
  const v = await selfCheck('node2', newId);
  assert.ok(v.pass, v.line);
  const folder = path.join(
    nodeContainerd(CLUSTER, 'node2').kubeletDir,
    'pods',
    moved.metadata!.uid!,
    'volumes/kubernetes.io~empty-dir/state',
  );
  const log = (await readFile(path.join(folder, 'counter.log'), 'utf8')).trim().split('\n');
  assert.equal(log[0], '1', 'the log from its first line, in the replacement’s own emptyDir');
  assert.ok(source.metadata!.uid !== moved.metadata!.uid);
  for (let i = 0; i < 100 && (await runc('node1').state(id)); i++) await sleep(100);
  await core.deleteNamespacedPod({ namespace: 'default', name: moved.metadata!.name! });
});

test('a ReplicaSet’s pod moves: the replacement joins it once it runs, the ReplicaSet removes the source, never fewer ready pods, none made', async () => {
  const app = unique('rs');
  const [moved, peer] = [`${app}-a`, `${app}-b`];
  const labels = { app };
  const id = await h.runningPod(moved, { labels });
  await h.runningPod(peer, { labels });
  // The ReplicaSet (apps/v1, its controller emulated by the fake API server) adopts both.
  const apps = h.kc.makeApiClient(AppsV1Api);
  const template = { metadata: { labels }, spec: { containers: [{ name: 'app', image: COUNTER_IMAGE }] } };
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
  const logged = h.api.replicaSetLog.length;

  // The ReplicaSet's ready members, watched throughout the move.
  let fewest = Infinity;
  let watching = true;
  const watcher = (async () => {
    for (; watching; await sleep(20))
      fewest = Math.min(fewest, (await members()).filter((p) => podRunning(p).running).length);
  })();
  const m = await h.applyAndWait(unique('mprs'), moved);
  watching = false;
  await watcher;
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const target = m.status.migrationState!.targetPod!;
  assert.ok(fewest >= 2, `ready members never fewer than 2 (fewest seen: ${fewest})`);
  assert.deepEqual(
    h.api.replicaSetLog.slice(logged),
    [{ type: 'delete', pod: moved }],
    'the ReplicaSet removed the source, and made no pod',
  );
  const now = await members();
  assert.deepEqual(now.map((p) => p.metadata!.name).sort(), [peer, target].sort());
  const r = now.find((p) => p.metadata!.name === target)!;
  assert.deepEqual(r.metadata!.labels, labels);
  assert.equal(r.metadata!.annotations!['ferry.dev/adopt'], undefined);
  assert.equal(r.spec!.nodeName, 'node2');
  const v = await selfCheck(
    'node2',
    r.status!.containerStatuses![0]!.containerID!.replace('containerd://', ''),
  );
  assert.ok(v.pass, v.line);
  for (let i = 0; i < 100 && (await runc('node1').state(id)); i++) await sleep(100);
  assert.equal(await runc('node1').state(id), undefined, 'the source container is gone');
  await apps.deleteNamespacedReplicaSet({ namespace: 'default', name: app });
  for (const p of [peer, target]) await core.deleteNamespacedPod({ namespace: 'default', name: p });
});

test('a pod with a ReadWriteMany claim moves with it, its pages streamed and its files sent under the bandwidth limit, compressed', async () => {
  const claim = unique('rwx');
  await core.createNamespacedPersistentVolumeClaim({
    namespace: 'default',
    body: {
      metadata: { name: claim },
      spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '1Gi' } } },
    },
  });
  const pod = unique('ctrd');
  await h.runningPod(pod, { volumes: [{ name: 'data', persistentVolumeClaim: { claimName: claim } }] });
  const moved = await h.applyAndWait(unique('mpc'), pod, { bandwidth: '50Mi', compression: 'Zstd' });
  assert.equal(moved.status.phase, 'Succeeded', moved.status.failureReason);
  const r = await podOn(moved.status.migrationState!.targetPod!);
  assert.equal(r.spec!.volumes?.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName, claim);
  assert.equal(moved.status.warnings, undefined, 'bandwidth and Zstd apply to a pod’s move');
  const v = await selfCheck(
    'node2',
    r.status!.containerStatuses![0]!.containerID!.replace('containerd://', ''),
  );
  assert.ok(v.pass, v.line);
  await core.deleteNamespacedPod({ namespace: 'default', name: r.metadata!.name! });
});

test('ferry migrate POD from a laptop (KUBECONFIG alone) finds the pod’s node and moves it, as virtctl migrate does', async () => {
  const pod = unique('ctrd');
  await h.runningPod(pod);
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: h.kubeconfigFile };
  delete env.FERRY_CLUSTER;
  const r = await exec(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'migrate', pod, '--wait'], {
    env,
  });
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  const m = (await h.store.list('default')).find((x) => x.spec.source.pod === pod)!;
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.deepEqual(
    [m.spec.source.node, m.spec.source.container, m.status.migrationState!.targetNode],
    ['node1', 'app', 'node2'],
  );
  await core.deleteNamespacedPod({ namespace: 'default', name: m.status.migrationState!.targetPod! });
});

/** A StatefulSet of one pod on node1, ferry's test workload keeping its log in an emptyDir. */
async function statefulSet(
  name: string,
  where: { namespace?: string; container?: string } = {},
): Promise<{ pod: string; id: string }> {
  const namespace = where.namespace ?? 'default';
  await h.kc.makeApiClient(AppsV1Api).createNamespacedStatefulSet({
    namespace,
    body: {
      metadata: { name },
      spec: {
        replicas: 1,
        serviceName: name,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [
                    { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node1'] }] },
                  ],
                },
              },
            },
            containers: [
              {
                name: where.container ?? 'app',
                image: COUNTER_IMAGE,
                args: ['--mem-mib', '16', '--dir', '/data'],
                volumeMounts: [{ name: 'state', mountPath: '/data' }],
              },
            ],
            volumes: [{ name: 'state', emptyDir: {} }],
          },
        },
      },
    },
  });
  const pod = `${name}-0`;
  for (let i = 0; i < 300; i++) {
    const st = (await core.readNamespacedPod({ namespace, name: pod }).catch(() => undefined))?.status
      ?.containerStatuses?.[0];
    if (st?.state?.running && st.containerID) return { pod, id: st.containerID.replace('containerd://', '') };
    await sleep(100);
  }
  throw new Error(`${pod} did not start`);
}

test('a StatefulSet’s pod moves with its name: the StatefulSet makes it again, ferry’s webhook restores it on node2', async () => {
  const name = unique('sts');
  const { pod, id } = await statefulSet(name);
  const before = await podOn(pod);
  await sleep(1000);
  const m = await h.applyAndWait(unique('ms'), pod);
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const moved = await podOn(pod);
  assert.equal(moved.spec!.nodeName, 'node2');
  assert.notEqual(moved.metadata!.uid, before.metadata!.uid, 'the StatefulSet’s pod, made again');
  assert.equal(moved.spec!.hostname, pod, 'its hostname kept');
  assert.equal(moved.metadata!.ownerReferences?.[0]?.kind, 'StatefulSet');
  assert.ok(
    h.api.admissions.some((a) => a.pod === pod && a.patched),
    'placed by ferry’s webhook',
  );
  const newId = moved.status!.containerStatuses![0]!.containerID!.replace('containerd://', '');
  assert.equal((await cri('node2').containerStatus(newId)).annotations.restored, 'true');
  const v = await selfCheck('node2', newId);
  assert.ok(v.pass, v.line);
  assert.equal(await runc('node1').state(id), undefined, 'the source container is gone');
  await h.kc.makeApiClient(AppsV1Api).deleteNamespacedStatefulSet({ namespace: 'default', name });
  await core.deleteNamespacedPod({ namespace: 'default', name: pod });
});

test('a StatefulSet’s pod the target cannot restore is restored from its checkpoint on node1, under its name, however long that takes', async () => {
  const name = unique('sts');
  const { pod } = await statefulSet(name);
  await sleep(1000);
  await forgetCounterImage('node2');
  await h.registry!.stop();
  const migration = unique('msf');
  // containerd pulls a checkpoint's base image by digest at every restore, node1's too: the pod
  // made again there fails as well while the registry is down, and ferry waits, rolling back, while
  // the kubelet retries it; the registry comes back a few seconds into the rollback.
  let waited = false;
  const comeBack = (async () => {
    for (let i = 0; i < 1200; i++) {
      const m = await h.store.get('default', migration).catch(() => undefined);
      const p = await podOn(pod).catch(() => undefined);
      const failing = p?.spec?.nodeName === 'node1' && p.status?.containerStatuses?.[0]?.state?.waiting;
      if (m?.status.phase === 'RollingBack' && failing) {
        await sleep(3000);
        waited = (await h.store.get('default', migration))?.status.phase === 'RollingBack';
        break;
      }
      await sleep(100);
    }
    await h.registry!.start();
  })();
  try {
    const m = await h.applyAndWait(migration, pod);
    await comeBack;
    assert.ok(waited, 'the restore on node1 failed, and ferry waited for it, rolling back');
    assert.equal(m.status.phase, 'Failed');
    assert.match(
      m.status.failureReason ?? '',
      /^Verifying: CriuRestoreFailed: pod .* on node2: .*CreateContainerError/,
    );
    const back = await podOn(pod);
    assert.equal(back.spec!.nodeName, 'node1', 'made again on node1');
    assert.ok(back.status?.containerStatuses?.[0]?.containerID, JSON.stringify(back.status));
    assert.ok(
      back.spec!.containers[0]!.image!.startsWith('localhost/ferry-checkpoint/'),
      'from the checkpoint',
    );
    const newId = back.status!.containerStatuses![0]!.containerID!.replace('containerd://', '');
    assert.equal((await cri('node1').containerStatus(newId)).annotations.restored, 'true');
    const v = await selfCheck('node1', newId);
    assert.ok(v.pass, v.line);
  } finally {
    await comeBack.catch(() => undefined);
  }
  await h.kc.makeApiClient(AppsV1Api).deleteNamespacedStatefulSet({ namespace: 'default', name });
  await core.deleteNamespacedPod({ namespace: 'default', name: pod });
});

test('a restore containerd refuses rolls back: the source pod thawed and intact, node2 clean of its images and emptyDir', async () => {
  const pod = unique('ctrd');
  const id = await h.runningPod(pod, {
    volumes: [{ name: 'state', emptyDir: {} }],
    mounts: [{ name: 'state', mountPath: '/data' }],
  });
  // containerd pulls a checkpoint's base image at restore: with the registry down and node2
  // without the image, it refuses to create the container.
  await forgetCounterImage('node2');
  await h.registry!.stop();
  try {
    const m = await h.applyAndWait(unique('mcf'), pod);
    assert.equal(m.status.phase, 'Failed');
    assert.match(m.status.failureReason ?? '', /CreateContainerError \(.*base image/);
    const left = (await pods()).filter((p) => p.metadata!.name!.startsWith(pod));
    assert.deepEqual(
      left.map((p) => p.metadata!.name),
      [pod],
      'only the source pod is left',
    );
    assert.equal((await runc('node1').state(id))?.status, 'running', 'the source container is thawed');
    const v = await selfCheck('node1', id);
    assert.ok(v.pass, v.line);
    const images = await exec(nodeContainerd(CLUSTER, 'node2').ctr, [
      '--address',
      nodeContainerd(CLUSTER, 'node2').socket,
      '--namespace',
      'k8s.io',
      'images',
      'ls',
      '-q',
    ]);
    assert.ok(!images.stdout.includes(m.metadata.uid.slice(0, 12)), 'the checkpoint image is removed');
    const written = await exec('find', [
      path.join(nodeContainerd(CLUSTER, 'node2').kubeletDir, 'pods'),
      '-path',
      '*kubernetes.io~empty-dir/state*',
    ]);
    assert.equal(written.stdout, '', 'the emptyDir written for the replacement is removed');
  } finally {
    await h.registry!.start();
  }
  await core.deleteNamespacedPod({ namespace: 'default', name: pod });
});

test('ferry drain on Kubernetes, as kubectl drain: the Node cordoned, its pods moved, DaemonSet pods left, budgets waited for or named, the Node given back as asked', async () => {
  const movable = unique('ctrd');
  await h.runningPod(movable);
  // Two pods under budgets that allow no disruption: one the test relaxes while the drain waits,
  // one that stays blocked until the drain's timeout.
  const [waits, blocked] = [unique('ctrd'), unique('ctrd')];
  await h.runningPod(waits);
  await h.runningPod(blocked);
  const policy = h.kc.makeApiClient(PolicyV1Api);
  const budget = (name: string, app: string) =>
    policy.createNamespacedPodDisruptionBudget({
      namespace: 'default',
      body: { metadata: { name }, spec: { minAvailable: 1, selector: { matchLabels: { app } } } },
    });
  await budget(`${waits}-pdb`, waits);
  await budget(`${blocked}-pdb`, blocked);
  // Pods the kubelet runs too, that cannot move: a folder of the node's own, a DaemonSet's.
  const stuck = unique('scratch');
  await h.runningPod(stuck, { volumes: [{ name: 'logs', hostPath: { path: '/var/log' } }] });
  const daemon = unique('agent');
  const owner = { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: 'd', controller: true };
  await core.createNamespacedPod({
    namespace: 'default',
    body: {
      metadata: { name: daemon, ownerReferences: [owner] },
      spec: { nodeName: 'node1', containers: [{ name: 'app', image: COUNTER_IMAGE }] },
    },
  });
  const ours = [movable, waits, blocked, stuck, daemon];
  const client = await connect(CLUSTER, h.kubeconfigFile);
  const lines: string[] = [];
  const nodes = new KubeNodeApi(h.kc);
  const cordoned = async () => (await core.readNode({ name: 'node1' })).spec?.unschedulable === true;
  try {
    const podApi = new KubePodApi(h.kc);
    const all = await podApi.onNode('node1');
    let cordonedWhileDraining = false;
    const relax = (async () => {
      // Once the drain says it waits for the first budget: the budget allows one.
      while (!lines.some((l) => l.includes(`${waits}: waiting: PodDisruptionBudget default/${waits}-pdb`)))
        await sleep(100);
      cordonedWhileDraining = await cordoned();
      await policy.replaceNamespacedPodDisruptionBudget({
        namespace: 'default',
        name: `${waits}-pdb`,
        body: {
          metadata: { name: `${waits}-pdb` },
          spec: { minAvailable: 0, selector: { matchLabels: { app: waits } } },
        },
      });
    })();
    const report = await drainPods(
      {
        client,
        // Only this test's pods: earlier tests' pods are gone or elsewhere, but be exact.
        listPods: async () => all.filter((p) => ours.includes(p.metadata!.name!)),
        podRunning: async (ns, name) => podRunning(await podApi.get(ns, name)).running,
        nodes,
      },
      'node1',
      { say: (l) => lines.push(l), timeoutMs: 25_000, budgetPollMs: 200, uncordon: 'failed' },
    );
    await relax;
    const said = lines.join('\n');
    assert.ok(cordonedWhileDraining, 'node1 was cordoned while it was drained');
    assert.match(said, /^node node1 cordoned$/m);
    assert.deepEqual(
      report.moved.map((m) => `${m.container}→${m.to}`).sort(),
      [`default/${movable}→node2`, `default/${waits}→node2`].sort(),
    );
    assert.deepEqual(
      report.failed.map((f) => f.container).sort(),
      [`default/${blocked}`, `default/${stuck}`].sort(),
    );
    assert.match(
      report.failed.find((f) => f.container === `default/${blocked}`)!.reason,
      new RegExp(
        `PodDisruptionBudget default/${blocked}-pdb allows no disruption now \\(1 healthy, 1 required\\); waited until the drain's timeout`,
      ),
    );
    assert.match(
      report.failed.find((f) => f.container === `default/${stuck}`)!.reason,
      /volume logs is a hostPath/,
    );
    assert.ok(
      lines.some((l) => l.includes(daemon) && /stays: part of DaemonSet agent/.test(l)),
      said,
    );
    // Something could not move and --uncordon failed was asked: node1 is given back.
    assert.match(said, /^node node1 uncordoned$/m);
    assert.equal(await cordoned(), false);
    const left = (await podApi.onNode('node1')).map((p) => p.metadata!.name);
    for (const p of [stuck, daemon, blocked]) assert.ok(left.includes(p), `${p} still on node1`);
    assert.ok(!left.includes(movable) && !left.includes(waits));
  } finally {
    await nodes.cordon('node1', false);
    await client.close();
    for (const p of await pods())
      if (ours.some((o) => p.metadata!.name === o || p.metadata!.name!.startsWith(`${o}-`)))
        await core.deleteNamespacedPod({ namespace: 'default', name: p.metadata!.name! });
  }
});

test('a Migration that names a cordoned node is refused while Pending; a nodeSelector finds the Nodes’ own labels', async () => {
  const nodes = new KubeNodeApi(h.kc);
  const pod = unique('ctrd');
  await h.runningPod(pod);
  await nodes.cordon('node2', true);
  await sleep(NODES_SEEN_MS); // the controller reads the Nodes at most once a second
  try {
    const refused = await h.applyAndWait(unique('mcord'), pod);
    assert.equal(refused.status.phase, 'Failed');
    assert.match(refused.status.failureReason ?? '', /target node node2 is cordoned/);
  } finally {
    await nodes.cordon('node2', false);
  }
  // node2's Node, labelled by the cluster's owner (no agent advertises it): the selector finds it.
  const n = await core.readNode({ name: 'node2' });
  n.metadata!.labels = { ...n.metadata!.labels, pool: 'stateful' };
  await core.replaceNode({ name: 'node2', body: n });
  await sleep(NODES_SEEN_MS);
  const name = unique('msel');
  await h.store.create({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: {
      source: { node: 'node1', pod, container: 'app' },
      target: { nodeSelector: { pool: 'stateful' } },
    },
  });
  let placed = await h.store.get('default', name);
  for (let i = 0; i < 1200 && !TERMINAL_PHASES.includes(placed!.status.phase); i++) {
    await sleep(100);
    placed = await h.store.get('default', name);
  }
  assert.ok(placed);
  assert.equal(placed.status.phase, 'Succeeded', placed.status.failureReason);
  assert.equal(placed.status.migrationState!.targetNode, 'node2');
  await core.deleteNamespacedPod({ namespace: 'default', name: placed.status.migrationState!.targetPod! });
});

test('examples/pod-migration.yaml, applied with ferry as written (its source node named node1 here), moves cache-0 to the node labelled pool=stateful', async () => {
  // The example's StatefulSet: cache, in namespace shop, its container redis, on node1.
  const { pod } = await statefulSet('cache', { namespace: 'shop', container: 'redis' });
  const n = await core.readNode({ name: 'node2' });
  n.metadata!.labels = { ...n.metadata!.labels, pool: 'stateful' };
  await core.replaceNode({ name: 'node2', body: n });
  await sleep(NODES_SEEN_MS);
  const text = (await readFile('examples/pod-migration.yaml', 'utf8')).replace(
    'node: worker-1',
    'node: node1',
  );
  const file = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-example-')), 'pod-migration.yaml');
  await writeFile(file, text);
  const applied = await exec(process.execPath, [
    '--import',
    'tsx',
    'cli/main.ts',
    '--cluster',
    CLUSTER,
    '--kubeconfig',
    h.kubeconfigFile,
    'apply',
    '-f',
    file,
    '--wait',
  ]);
  const m = await h.store.get('shop', 'move-cache');
  assert.equal(
    m?.status.phase,
    'Succeeded',
    `${m?.status.failureReason}\n${applied.stdout}${applied.stderr}`,
  );
  assert.equal(applied.code, 0);
  assert.equal(m!.status.migrationState!.targetNode, 'node2');
  const moved = await core.readNamespacedPod({ namespace: 'shop', name: pod });
  assert.equal(moved.spec?.nodeName, 'node2', 'cache-0 made again on the labelled node');
  await h.kc.makeApiClient(AppsV1Api).deleteNamespacedStatefulSet({ namespace: 'shop', name: 'cache' });
  await core.deleteNamespacedPod({ namespace: 'shop', name: pod });
});

test('containerd’s checkpoint archive is read by ferry, and ferry’s by containerd and checkpointctl', async () => {
  const pod = unique('ctrd');
  const id = await h.runningPod(pod);
  const work = await mkdtemp(path.join(tmpdir(), 'ferry-ctrd-'));
  try {
    // The kubelet's checkpoint API: containerd's CRI CheckpointContainer writes the archive.
    const archive = await checkpointContainer(
      {
        address: BRIDGE,
        port: KUBELET_PORT_BASE + 1,
        token: (await readFile(kubeletFiles(CLUSTER).token, 'utf8')).trim(),
        ca: await readFile(kubeletFiles(CLUSTER).ca),
      },
      { namespace: 'default', pod, container: 'app' },
    );
    await run('tar', ['--extract', '--file', archive, '--directory', work, 'config.dump', 'spec.dump']);
    const config = JSON.parse(await readFile(path.join(work, 'config.dump'), 'utf8')) as Record<
      string,
      string
    >;
    const spec = JSON.parse(await readFile(path.join(work, 'spec.dump'), 'utf8')) as {
      annotations: Record<string, string>;
    };
    const annotations = checkpointAnnotations(config, spec.annotations, {
      criuVersion: '4',
      arch: 'amd64',
      kernel: 'test',
    });
    assert.equal(annotations['org.criu.checkpoint.engine.name'], 'containerd');
    assert.equal(annotations['org.criu.checkpoint.container.name'], 'app');
    assert.equal(annotations['org.criu.checkpoint.pod.name'], pod);
    assert.equal(annotations['org.criu.checkpoint.rootfsImageName'], COUNTER_IMAGE);
    // ferry's image of it, imported into node2's containerd, which restores it into a new pod.
    const ref = `localhost/ferry-checkpoint/app:${pod}`;
    await buildCheckpointImage({ archive, out: path.join(work, 'image.tar'), ref, annotations });
    await rm(archive, { force: true });
    const kube = KubeNodeSchema.parse({
      kubeletAddress: BRIDGE,
      tokenFile: '/dev/null',
      runtime: 'containerd',
      criSocket: nodeContainerd(CLUSTER, 'node2').socket,
      ctr: nodeContainerd(CLUSTER, 'node2').ctr,
    });
    const [ctr, ...args] = importCommand('containerd', path.join(work, 'image.tar'), ref, kube);
    await run(ctr, args);
    const copy = `${pod}-copy`;
    await core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: copy },
        spec: { nodeName: 'node2', containers: [{ name: 'app', image: ref, imagePullPolicy: 'Never' }] },
      },
    });
    let copyId = '';
    for (let i = 0; i < 300 && !copyId; i++) {
      const st = (await podOn(copy)).status?.containerStatuses?.[0];
      assert.equal(st?.state?.waiting, undefined, st?.state?.waiting?.message);
      copyId = st?.containerID?.replace('containerd://', '') ?? '';
      if (!copyId) await sleep(100);
    }
    const v = await selfCheck('node2', copyId);
    assert.ok(v.pass, v.line);
    await core.deleteNamespacedPod({ namespace: 'default', name: copy });

    // ferry's own dump of the frozen container (the migration's), as checkpointctl shows it.
    await runc('node1').pause(id);
    const ours = await dumpContainerdContainer(
      runc('node1'),
      KubeNodeSchema.parse({ ...kube, criSocket: nodeContainerd(CLUSTER, 'node1').socket }),
      id,
      path.join(work, 'dump'),
      { criuVersion: 'test', arch: 'amd64', kernel: 'test' },
    );
    assert.equal((await runc('node1').state(id))?.status, 'paused', 'the dump leaves it frozen');
    await runc('node1').resume(id);
    const shown = await run(path.join(FERRY_OPT, 'bin/checkpointctl'), ['show', ours]);
    const row = shown.split('\n').find((l) => l.startsWith('app '));
    assert.ok(row, shown);
    assert.match(
      row,
      new RegExp(
        `${COUNTER_IMAGE.replace(/[.]/g, '\\.')}\\s+${id.slice(0, 12)}\\s+io\\.containerd\\.runc\\.v2`,
      ),
    );
    assert.match(row, /\bcontainerd\b/);
  } finally {
    await rm(work, { recursive: true, force: true });
    await core.deleteNamespacedPod({ namespace: 'default', name: pod });
  }
});
