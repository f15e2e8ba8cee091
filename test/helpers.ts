// Shared set-up for tests on the real local cluster: a cluster named "test" (its own subnet,
// Redis and nodes, fault hooks on), and helpers to run workloads and migrations on it.
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, readlink } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { exec } from '../lib/exec.ts';
import { VerifyResultSchema, type ContainerInfo } from '../api/v1alpha1/job-results.ts';
import { API_VERSION, type MigrationInput, type StoredMigration } from '../api/v1alpha1/migration.ts';
import { clusterUp } from '../cluster/cluster.ts';
import { REPO_ROOT } from '../cluster/processes.ts';
import { connect, type Client } from '../cli/client.ts';
import { waitForMigration } from '../cli/watch.ts';
import { keyspace } from '../lib/keyspace.ts';
import { type HookInput, type HookPoint } from '../agent/fault-hooks.ts';
import { nodePaths } from '../lib/paths.ts';

export const CLUSTER = 'test';
/** The test cluster's controller serves its dashboard and Prometheus metrics here. */
export const METRICS_PORT = 9478;
/** Node N's agent finds its fake kubelet at the bridge address, this port + N (pod-migration test). */
export const KUBELET_PORT_BASE = 10250;

/** The fake CUDA helper's state file on the test cluster (test/fake-cuda-helper.mjs). */
export const FAKE_CUDA_STATE = '/var/lib/ferry/test/fake-cuda.json';
/** Where the test cluster's agents find their NVIDIA device nodes: /dev/null's numbers, by name. */
export const FAKE_GPU_DEV = '/var/lib/ferry/test/fake-dev';
export const FAKE_GPU_NODES = ['nvidia0', 'nvidiactl', 'nvidia-uvm'];

async function fakeGpuNodes(): Promise<void> {
  await mkdir(FAKE_GPU_DEV, { recursive: true, mode: 0o700 });
  for (const n of FAKE_GPU_NODES)
    if (!existsSync(path.join(FAKE_GPU_DEV, n)))
      await exec('mknod', ['-m', '0600', path.join(FAKE_GPU_DEV, n), 'c', '1', '3'], {
        errorCode: 'Internal',
      });
}

/** Brings the test cluster up, or repairs it (a killed controller is started again). */
export const upTestCluster = async () => {
  await fakeGpuNodes();
  return clusterUp({
    name: CLUSTER,
    nodes: 2,
    subnet: '10.78.0',
    faultHooks: true,
    diskGiB: 4,
    imagesGiB: 2,
    leaseMs: 3000,
    metricsPort: METRICS_PORT,
    kubeletPortBase: KUBELET_PORT_BASE,
    gpu: {
      helper: [
        process.execPath,
        path.join(REPO_ROOT, 'test/fake-cuda-helper.mjs'),
        '--state',
        FAKE_CUDA_STATE,
      ],
      devDir: FAKE_GPU_DEV,
    },
  });
};

export async function testCluster(): Promise<Client> {
  await upTestCluster();
  return connect(CLUSTER);
}

/** The test controller's web address, once it answers: a controller just (re)started by
 * upTestCluster opens its port a moment after its process starts. */
export async function controllerUrl(): Promise<string> {
  const base = `http://127.0.0.1:${METRICS_PORT}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(`${base}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return base;
    if (i > 200) throw new Error(`the test cluster's controller does not answer at ${base}`);
    await sleep(100);
  }
}

/** A name no other test uses, so tests never see each other's containers or Migrations. */
export const unique = (prefix: string): string => `${prefix}-${randomBytes(3).toString('hex')}`;

export async function runWorkload(
  c: Client,
  node: string,
  container: string,
  memoryMiB = 32,
): Promise<ContainerInfo> {
  return (await c.bus.call(
    node,
    { kind: 'run', container, memoryMiB, intervalMs: 10 },
    120_000,
  )) as ContainerInfo;
}

export async function verify(c: Client, node: string, container: string) {
  return VerifyResultSchema.parse(await c.bus.call(node, { kind: 'verify', container }));
}

export async function list(c: Client, node: string): Promise<ContainerInfo[]> {
  return (await c.bus.call(node, { kind: 'list' })) as ContainerInfo[];
}

export async function migrate(
  c: Client,
  name: string,
  source: { node: string; container: string; pid?: number },
  target: string,
  spec: Partial<MigrationInput['spec']> = {},
): Promise<StoredMigration> {
  await c.store.create({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: { source, target: { node: target }, ...spec },
  });
  return waitForMigration(c, 'default', name, () => undefined, 300_000);
}

export async function armHook(
  c: Client,
  node: string,
  point: HookPoint,
  action: HookInput,
  cluster = CLUSTER,
): Promise<void> {
  await c.redis.hset(keyspace.agentHooks(cluster, node), point, JSON.stringify(action));
}

/** What a node still holds for a migration: snapshots, received subvolumes and image folders. */
export async function leftovers(node: string, uid: string): Promise<string[]> {
  const p = nodePaths(CLUSTER, node);
  const found: string[] = [];
  // Snapshots, received streams, images, and the node's own record of the migration.
  for (const dir of [`${p.fsRoot}/snapshots`, `${p.fsRoot}/incoming`, p.imagesDir, `${p.fsRoot}/records`]) {
    for (const e of await readdir(dir).catch(() => [] as string[]))
      if (e.includes(uid)) found.push(`${dir}/${e}`);
  }
  return found;
}

export const phases = (m: StoredMigration): string[] =>
  m.status.phaseTransitionTimestamps.map((t) => t.phase);

/**
 * A failed migration left things as they were: Failed with the reason, the source running with its
 * memory and file intact (and counting on), the target with no copy and nothing received.
 */
export async function expectRolledBack(
  c: Client,
  container: string,
  name: string,
  reason: RegExp,
  counterBefore: number,
): Promise<void> {
  const m = (await c.store.get('default', name))!;
  assert.equal(m.status.phase, 'Failed');
  assert.match(m.status.failureReason ?? '', reason);
  assert.ok(phases(m).includes('RollingBack'));

  // The source runs on (not frozen), with its memory and file intact, and keeps counting.
  const src = (await list(c, 'node1')).find((x) => x.id === container);
  assert.equal(src?.status, 'running');
  const v = await verify(c, 'node1', container);
  assert.ok(v.pass, v.line);
  assert.ok(v.counter! > counterBefore, `source continued: ${counterBefore} -> ${v.counter}`);

  // The target holds no copy, no bundle and nothing received.
  assert.ok(!(await list(c, 'node2')).some((x) => x.id === container), 'no container on the target');
  assert.ok(
    !existsSync(`${nodePaths(CLUSTER, 'node2').fsRoot}/containers/${container}`),
    'no bundle on the target',
  );
  assert.deepEqual(await leftovers('node2', m.metadata.uid), []);
  assert.deepEqual(await leftovers('node1', m.metadata.uid), []);
}

/** Every entry of a tree: path, type, mode, owner, size, content hash or link target, xattrs. */
export async function treeDigest(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const p = path.join(dir, name);
      const st = await lstat(p);
      const rel = path.relative(root, p);
      const what = st.isFile()
        ? createHash('sha256')
            .update(await readFile(p))
            .digest('hex')
        : st.isSymbolicLink()
          ? `-> ${await readlink(p)}`
          : st.isDirectory()
            ? 'dir'
            : 'special';
      out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isFile() ? st.size : ''} ${what}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  const attrs = (await exec('getfattr', ['-R', '-h', '-d', '-m', '-', '.'], { cwd: root })).stdout
    .split('\n')
    .filter(Boolean);
  return [...out, ...attrs];
}

/** Starts the test workload with one node-local volume, "state" at /state; returns its path. */
export async function runWithVolume(c: Client, node: string, container: string): Promise<string> {
  const volumes = [{ name: 'state', path: '/state' }];
  await c.bus.call(node, { kind: 'run', container, memoryMiB: 8, intervalMs: 10, volumes }, 120_000);
  return path.join(nodePaths(CLUSTER, node).fsRoot, 'containers', container, 'volumes', 'state');
}

/** Waits for `check` to hold, up to `timeoutMs`; resolves to whether it did. */
export async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(100)) if (await check()) return true;
  return check();
}
