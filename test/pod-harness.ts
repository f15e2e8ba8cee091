// The pod path's bench, for tests and benchmarks (test/pod-migration.test.ts, test/containerd-pods.test.ts,
// bench/pod-downtime.ts): a FAKE Kubernetes API server and a FAKE kubelet per node (test/fake-*.ts,
// no kube-apiserver or kubelet runs here) beside a local cluster whose agents were made to find
// them (cluster up's kubeletPortBase), and a real ferry controller serving that API server. The
// kubelets' runtime is either a REAL containerd per node over CRI (runtime 'containerd': pods are
// created and the kubelet starts them from the registry's counter image) or the FAKE CRI-O (pods
// run as runc containers of ferry's test workload that the harness starts, their status written
// as a kubelet would).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CoreV1Api,
  type KubeConfig,
  type V1Pod,
  type V1Volume,
  type V1VolumeMount,
} from '@kubernetes/client-node';
import { API_VERSION, TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import type { Client } from '../cli/client.ts';
import { kubeletFiles, nodeImageStore } from '../cluster/cluster.ts';
import { nodeEntry, REPO_ROOT } from '../cluster/processes.ts';
import { createLogger } from '../lib/logger.ts';
import { KubeMigrationStore, loadKubeConfig } from '../lib/store/kube-store.ts';
import { FakeApiServer } from './fake-apiserver.ts';
import { FakeCrio, FakeKubelet, type KubeletRuntime } from './fake-kubelet.ts';
import {
  COUNTER_IMAGE,
  pushTestImages,
  startContainerd,
  startRegistry,
  type ContainerdNode,
} from './containerd-node.ts';
import { ContainerdRuntime } from './cri-runtime.ts';
import { runWorkload } from './helpers.ts';
import { selfSignedCert } from './self-signed.ts';

export interface PodHarness {
  api: FakeApiServer;
  core: CoreV1Api;
  store: KubeMigrationStore;
  kubelets: Record<string, FakeKubelet>;
  kubeconfigFile: string;
  kc: KubeConfig;
  /** Creates a pod in "default" and writes its status, as its kubelet would have. */
  createPod(body: V1Pod, status: V1Pod['status']): Promise<void>;
  /**
   * A running pod on node1 whose one container is "app", ferry's test workload; returns the
   * container's runtime id.
   */
  runningPod(name: string, o?: PodOptions): Promise<string>;
  /** Applies a pod Migration node1 → node2 and waits for it to end. */
  applyAndWait(name: string, pod: string, strategy?: Record<string, string>): Promise<StoredMigration>;
  /** The registry the containerd nodes pull from (runtime 'containerd'): tests stop it to see a pull fail. */
  registry?: { stop(): Promise<void>; start(): Promise<void> };
  stop(): Promise<void>;
}

export interface PodOptions {
  labels?: Record<string, string>;
  volumes?: V1Volume[];
  memoryMiB?: number;
  /** Where the container mounts the volumes (containerd pods). */
  mounts?: V1VolumeMount[];
}

export type HarnessRuntime = 'cri-o' | 'containerd';

/**
 * Starts the fakes and a controller for `cluster`, whose agents look for their kubelet at
 * `bridge`:`portBase + N` (node N) with the token and CA of kubeletFiles.
 */
export async function startPodHarness(
  c: Client,
  o: { cluster: string; bridge: string; portBase: number; runtime?: HarnessRuntime },
): Promise<PodHarness> {
  const containerd = o.runtime === 'containerd';
  let registry = containerd ? await startRegistry() : undefined;
  if (containerd) await pushTestImages();
  const api = new FakeApiServer();
  await api.start();
  const kubeconfigFile = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-pods-')), 'config');
  await writeFile(kubeconfigFile, api.kubeconfig(), { mode: 0o600 });
  const kc = loadKubeConfig(kubeconfigFile);
  const core = kc.makeApiClient(CoreV1Api);
  const store = new KubeMigrationStore(kc, createLogger('test', '/dev/null'));
  // The Nodes, as each kubelet would register its own: the controller places by their labels.
  for (const name of ['node1', 'node2'])
    await core.createNode({ body: { metadata: { name, labels: { 'kubernetes.io/hostname': name } } } });
  // The agents present this token and trust this certificate (cluster/cluster.ts kubeletFiles).
  const token = randomBytes(16).toString('hex');
  const tls = selfSignedCert(o.bridge);
  const files = kubeletFiles(o.cluster);
  await mkdir(path.dirname(files.token), { recursive: true, mode: 0o700 });
  await writeFile(files.token, token, { mode: 0o600 });
  await writeFile(files.ca, tls.cert, { mode: 0o600 });
  const kubelets: Record<string, FakeKubelet> = {};
  const runtimes: ContainerdNode[] = [];
  for (const [i, node] of ['node1', 'node2'].entries()) {
    let runtime: KubeletRuntime;
    if (containerd) {
      const n = await startContainerd(o.cluster, node, i + 1);
      runtimes.push(n);
      runtime = new ContainerdRuntime(n.cri, n.kubeletDir);
    } else runtime = new FakeCrio(node, c.bus, nodeImageStore(o.cluster, node));
    kubelets[node] = new FakeKubelet({
      node,
      address: o.bridge,
      port: o.portBase + i + 1,
      token,
      tls,
      core,
      runtime,
    });
    await kubelets[node].start();
  }
  // The controller serves the pods' admission webhook over TLS; the fake API server calls it for
  // StatefulSet pods, trusting its certificate (the chart: templates/webhook.yaml).
  const webhookTls = selfSignedCert('127.0.0.1');
  const webhookPort = o.portBase + 150;
  const dir = path.dirname(kubeconfigFile);
  await writeFile(path.join(dir, 'webhook.pem'), webhookTls.cert, { mode: 0o600 });
  await writeFile(path.join(dir, 'webhook.key'), webhookTls.key, { mode: 0o600 });
  api.webhook = { url: `https://127.0.0.1:${webhookPort}/mutate-pods`, ca: webhookTls.cert };
  const [cmd, ...args] = nodeEntry('controller/main.ts', [
    ...['--cluster', o.cluster, '--kubeconfig', kubeconfigFile],
    ...['--webhook-port', String(webhookPort), '--webhook-host', '127.0.0.1'],
    ...['--webhook-cert', path.join(dir, 'webhook.pem'), '--webhook-key', path.join(dir, 'webhook.key')],
  ]);
  const controller: ChildProcess = spawn(cmd!, args, { cwd: REPO_ROOT, stdio: 'ignore' });

  /** Creates a pod and writes its status, as its kubelet would have (status is ignored on create). */
  async function createPod(body: V1Pod, status: V1Pod['status']): Promise<void> {
    await core.createNamespacedPod({ namespace: 'default', body });
    const cur = await core.readNamespacedPod({ namespace: 'default', name: body.metadata!.name! });
    await core.replaceNamespacedPodStatus({
      namespace: 'default',
      name: body.metadata!.name!,
      body: { ...cur, status },
    });
  }

  async function runningPod(name: string, p: PodOptions = {}): Promise<string> {
    if (containerd) return startedPod(name, p);
    const id = randomBytes(16).toString('hex');
    await runWorkload(c, 'node1', id, p.memoryMiB ?? 16);
    const image = 'registry.example/counter:1';
    const volumes = p.volumes ?? [];
    await createPod(
      {
        metadata: { name, labels: p.labels ?? { app: name } },
        spec: {
          nodeName: 'node1',
          containers: [{ name: 'app', image }],
          ...(volumes.length ? { volumes } : {}),
        },
      },
      {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: [
          {
            name: 'app',
            containerID: `cri-o://${id}`,
            image,
            imageID: '',
            ready: true,
            restartCount: 0,
            state: { running: {} },
          },
        ],
      },
    );
    return id;
  }

  /** A pod the node's kubelet starts through containerd; resolves once it runs. */
  async function startedPod(name: string, p: PodOptions): Promise<string> {
    const volumes = p.volumes ?? [];
    await core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name, labels: p.labels ?? { app: name } },
        spec: {
          nodeName: 'node1',
          containers: [
            {
              name: 'app',
              image: COUNTER_IMAGE,
              args: ['--mem-mib', String(p.memoryMiB ?? 16), '--dir', '/data'],
              ...(p.mounts ? { volumeMounts: p.mounts } : {}),
            },
          ],
          ...(volumes.length ? { volumes } : {}),
        },
      },
    });
    for (let i = 0; i < 600; i++) {
      const pod = await core.readNamespacedPod({ namespace: 'default', name });
      const st = pod.status?.containerStatuses?.[0];
      if (st?.state?.running && st.containerID) return st.containerID.replace(/^containerd:\/\//, '');
      if (st?.state?.waiting) throw new Error(`pod ${name} did not start: ${st.state.waiting.message}`);
      await sleep(100);
    }
    throw new Error(`pod ${name} did not start`);
  }

  async function applyAndWait(name: string, pod: string, strategy: Record<string, string> = {}) {
    await store.create({
      apiVersion: API_VERSION,
      kind: 'Migration',
      metadata: { name, namespace: 'default' },
      spec: { source: { node: 'node1', container: 'app', pod }, target: { node: 'node2' }, strategy },
    });
    for (let i = 0; i < 1800; i++) {
      const m = await store.get('default', name);
      if (m && TERMINAL_PHASES.includes(m.status.phase)) return m;
      await sleep(100);
    }
    throw new Error(`${name} did not end`);
  }

  return {
    api,
    core,
    store,
    kubelets,
    kubeconfigFile,
    kc,
    createPod,
    runningPod,
    applyAndWait,
    ...(containerd
      ? {
          registry: {
            async stop() {
              registry?.kill();
              await new Promise((r) =>
                registry?.exitCode === null ? registry.once('exit', r) : r(undefined),
              );
            },
            async start() {
              registry = await startRegistry();
            },
          },
        }
      : {}),
    async stop() {
      controller.kill('SIGTERM');
      await new Promise((r) => controller.once('exit', r));
      for (const k of Object.values(kubelets)) await k.stop();
      for (const n of runtimes) await n.stop();
      registry?.kill();
      await api.stop();
    },
  };
}
