// `ferry cluster up|down`: the local cluster. Simulated nodes are network namespaces on a bridge,
// each with its own btrfs filesystem, image tmpfs, runc state root, SSH key and agent process.
// Both commands are idempotent: `up` repairs whatever is missing, `down` removes whatever exists.
import { mkdir, readFile, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AgentConfigSchema,
  ClusterConfigSchema,
  ClusterNameSchema,
  type ClusterConfig,
  type Peer,
  type RedisConfig,
} from '../api/v1alpha1/cluster.ts';
import { FerryError } from '../lib/errors.ts';
import { exec } from '../lib/exec.ts';
import { connectRedis } from '../lib/redis.ts';
import {
  FERRY_OPT,
  FERRY_RUN,
  clusterConfigFile,
  clusterDir,
  nodeDir,
  nodePaths,
  nodeRunDir,
} from '../lib/paths.ts';
import { readyNodes } from '../lib/node-registry.ts';
import { generateNodeKey } from '../lib/ssh-keys.ts';
import {
  ensureBridge,
  ensureNodeNetwork,
  netnsName,
  nodeAddress,
  removeBridge,
  removeNodeNetwork,
} from './netns.ts';
import { ensureBtrfs, ensureTmpfs, unmount } from './node-fs.ts';
import { nodeEntry, runningPid, startDetached, stopProcess } from './processes.ts';
import { ensureRedis, stopRedis } from './redis-server.ts';

export const SSH_PORT = 2222;

export interface UpOptions {
  name: string;
  nodes: number;
  subnet: string;
  faultHooks: boolean;
  diskGiB: number;
  imagesGiB: number;
  redisUrl?: string;
  /** Leader lease of the controller (15 s, as client-go's default, unless set). */
  leaseMs?: number;
  metricsPort?: number;
  /**
   * Test clusters: each node's agent takes pods through a fake kubelet on the bridge address, at
   * this port plus the node's number, with a CRI-O-style image store of its own (test/fake-kubelet.ts).
   */
  kubeletPortBase?: number;
  /**
   * Test clusters: the agents' CUDA helper (test/fake-cuda-helper.mjs, through node) and where
   * their NVIDIA device nodes are (fakes of /dev/null's numbers), so GPU moves run without a GPU.
   */
  gpu?: { helper?: string[]; devDir?: string };
  say?: (line: string) => void;
}

/** The token and CA an agent of a test cluster presents to and expects from its fake kubelet. */
export const kubeletFiles = (cluster: string) => ({
  token: path.join(clusterDir(cluster), 'kubelet', 'token'),
  ca: path.join(clusterDir(cluster), 'kubelet', 'ca.pem'),
});

/** Where a test node keeps its checkpoint images (containers-storage, as CRI-O does). */
export const nodeImageStore = (cluster: string, node: string) => ({
  root: path.join(nodeDir(cluster, node), 'containers-storage'),
  runRoot: path.join(nodeRunDir(cluster, node), 'containers-storage'),
  driver: 'vfs',
});

/**
 * Where a test node's containerd keeps its state, socket and runc root (the test set-up starts one
 * per node: test/containerd-node.ts); its shim runs containers under runc root `runcOption`/k8s.io.
 */
export const nodeContainerd = (cluster: string, node: string) => {
  const dir = path.join(nodeDir(cluster, node), 'containerd');
  return {
    dir,
    socket: path.join(dir, 'containerd.sock'),
    runcOption: path.join(nodeRunDir(cluster, node), 'containerd-runc'),
    runcRoot: path.join(nodeRunDir(cluster, node), 'containerd-runc', 'k8s.io'),
    ctr: path.join(FERRY_OPT, 'containerd/usr/bin/ctr'),
    /** The fake kubelet's /var/lib/kubelet on this node (checkpoints, pod folders). */
    kubeletDir: path.join(nodeDir(cluster, node), 'kubelet'),
  };
};

export const nodeName = (i: number): string => `node${i}`;

export async function readClusterConfig(name: string): Promise<ClusterConfig | undefined> {
  const raw = await readFile(clusterConfigFile(name), 'utf8').catch(() => undefined);
  return raw ? ClusterConfigSchema.parse(JSON.parse(raw)) : undefined;
}

/** The name refused in the words every later command would use, before anything is made. */
export function requireClusterName(name: string): void {
  const p = ClusterNameSchema.safeParse(name);
  if (!p.success)
    throw new FerryError('InvalidInput', `cluster ${JSON.stringify(name)}: ${p.error.issues[0]!.message}`);
}

/**
 * What `cluster down` needs of a cluster's configuration, read without its schema: a cluster made
 * by an older ferry, or with a name it would now refuse, must still come down.
 */
async function configForDown(name: string): Promise<{ nodes: string[]; ownRedis: boolean } | undefined> {
  const raw = await readFile(clusterConfigFile(name), 'utf8').catch(() => undefined);
  if (!raw) return undefined;
  try {
    const c = JSON.parse(raw) as { nodes?: unknown; ownRedis?: unknown };
    const nodes = Array.isArray(c.nodes) ? c.nodes.filter((n): n is string => typeof n === 'string') : [];
    return { nodes, ownRedis: c.ownRedis !== false };
  } catch {
    return undefined;
  }
}

async function preconditions(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new FerryError('InvalidInput', 'the local cluster needs root (network namespaces, mounts, runc)');
  const need: Array<[string, string[]]> = [
    ['runc', ['--version']],
    ['btrfs', ['--version']],
    ['ip', ['-V']],
    ['iptables-restore', ['--version']],
    [path.join(FERRY_OPT, 'bin/criu'), ['--version']],
  ];
  for (const [cmd, args] of need) {
    const r = await exec(cmd, args).catch(() => ({ code: -1 }));
    if (r.code !== 0)
      throw new FerryError('CriuCheckFailed', `${cmd} is missing: run scripts/setup.sh first`);
  }
}

async function ensureNodeKey(keyFile: string, node: string): Promise<string> {
  const existing = await readFile(keyFile, 'utf8').catch(() => undefined);
  if (existing) {
    const pub = await readFile(`${keyFile}.pub`, 'utf8');
    return pub.trim();
  }
  const kp = generateNodeKey(node);
  await writeFile(keyFile, kp.privateKey, { mode: 0o600 });
  await writeFile(`${keyFile}.pub`, kp.publicKey + '\n', { mode: 0o600 });
  return kp.publicKey;
}

/** Each node's namespace, filesystems, key; the peers file every agent reads. */
async function ensureNodes(opts: UpOptions, dir: string, nodes: string[]): Promise<string> {
  const peers: Peer[] = [];
  for (const [i, node] of nodes.entries()) {
    const p = nodePaths(opts.name, node);
    await mkdir(p.dir, { recursive: true, mode: 0o700 });
    await ensureNodeNetwork(opts.name, opts.subnet, node, i + 1);
    await ensureBtrfs(p.disk, p.fsRoot, opts.diskGiB);
    await ensureTmpfs(p.imagesDir, opts.imagesGiB);
    await mkdir(p.runcRoot, { recursive: true, mode: 0o700 });
    const publicKey = await ensureNodeKey(p.keyFile, node);
    peers.push({ node, address: nodeAddress(opts.subnet, i + 1), sshPort: SSH_PORT, publicKey });
  }
  const peersFile = path.join(dir, 'peers.json');
  await writeFile(peersFile, JSON.stringify(peers, null, 2), { mode: 0o600 });
  return peersFile;
}

/** An agent's configuration file as `cluster up` writes it. */
function agentConfigFor(opts: UpOptions, redis: RedisConfig, peersFile: string, node: string, i: number) {
  const p = nodePaths(opts.name, node);
  const kube = opts.kubeletPortBase
    ? {
        kube: {
          kubeletAddress: `${opts.subnet}.1`,
          kubeletPort: opts.kubeletPortBase + i + 1,
          tokenFile: kubeletFiles(opts.name).token,
          caFile: kubeletFiles(opts.name).ca,
          runtime: 'cri-o',
          imageStore: nodeImageStore(opts.name, node),
          criSocket: nodeContainerd(opts.name, node).socket,
          runcRoot: nodeContainerd(opts.name, node).runcRoot,
          ctr: nodeContainerd(opts.name, node).ctr,
          kubeletDir: nodeContainerd(opts.name, node).kubeletDir,
        },
      }
    : {};
  return AgentConfigSchema.parse({
    cluster: opts.name,
    node,
    address: nodeAddress(opts.subnet, i + 1),
    sshPort: SSH_PORT,
    redis,
    fsRoot: p.fsRoot,
    imagesDir: p.imagesDir,
    runcRoot: p.runcRoot,
    cgroupParent: `/ferry/${opts.name}/${node}`,
    criuPath: path.join(FERRY_OPT, 'bin/criu'),
    keyFile: p.keyFile,
    peersFile,
    busybox: '/bin/busybox',
    workloadBinary: path.join(FERRY_OPT, 'bin/workload'),
    featuresBinary: path.join(FERRY_OPT, 'bin/features'),
    ferryctlBinary: path.join(FERRY_OPT, 'bin/ferryctl'),
    runDir: nodeRunDir(opts.name, node),
    faultHooks: opts.faultHooks,
    ...(opts.gpu?.helper ? { cudaHelper: opts.gpu.helper } : {}),
    ...(opts.gpu?.devDir ? { gpuDevDir: opts.gpu.devDir } : {}),
    ...kube,
  });
}

/** Writes each agent's configuration, and starts (or restarts, if it changed) each agent. */
async function ensureAgents(opts: UpOptions, redis: RedisConfig, peersFile: string, nodes: string[]) {
  const say = opts.say ?? (() => undefined);
  for (const [i, node] of nodes.entries()) {
    const p = nodePaths(opts.name, node);
    const agentConfig = agentConfigFor(opts, redis, peersFile, node, i);
    const text = JSON.stringify(agentConfig, null, 2);
    const changed = (await readFile(p.configFile, 'utf8').catch(() => '')) !== text;
    await writeFile(p.configFile, text, { mode: 0o600 });
    if (changed) await stopProcess(p.pidFile, p.configFile); // restart with the new configuration
    if (!(await runningPid(p.pidFile, p.configFile))) {
      const pid = await startAgent(opts.name, node);
      say(`${node}: agent started (pid ${pid}) at ${agentConfig.address}`);
    } else say(`${node}: agent running at ${agentConfig.address}`);
  }
}

export async function clusterUp(opts: UpOptions): Promise<ClusterConfig> {
  const say = opts.say ?? (() => undefined);
  requireClusterName(opts.name);
  // Everything ferry and its children (Redis, agents, runc, CRIU) create is for root only.
  process.umask(0o077);
  await preconditions();
  const prior = await readClusterConfig(opts.name);
  const dir = clusterDir(opts.name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { redis: redisCfg, own } = await ensureRedis(
    dir,
    opts.redisUrl ?? (prior && !prior.ownRedis && 'url' in prior.redis ? prior.redis.url : undefined),
  );
  say(`redis: ${'path' in redisCfg ? redisCfg.path : redisCfg.url}`);

  await ensureBridge(opts.name, opts.subnet);
  const nodes = Array.from({ length: opts.nodes }, (_, i) => nodeName(i + 1));
  const peersFile = await ensureNodes(opts, dir, nodes);
  const config: ClusterConfig = {
    name: opts.name,
    subnet: opts.subnet,
    nodes,
    redis: redisCfg,
    ownRedis: own,
    faultHooks: opts.faultHooks,
    leaseMs: opts.leaseMs ?? 15_000,
    metricsPort: opts.metricsPort ?? 0,
  };
  const controllerPid = path.join(dir, 'controller.pid');
  const marker = controllerMarker(opts.name);
  // A controller started with another configuration is restarted with this one.
  if (prior && JSON.stringify(prior) !== JSON.stringify(config)) await stopProcess(controllerPid, marker);
  await writeFile(clusterConfigFile(opts.name), JSON.stringify(config, null, 2), { mode: 0o600 });
  await ensureAgents(opts, redisCfg, peersFile, nodes);
  if (!(await runningPid(controllerPid, marker))) {
    const entry = nodeEntry('controller/main.ts', ['--cluster', opts.name]);
    const pid = await startDetached(entry, path.join(dir, 'controller.log'), controllerPid);
    say(`controller started (pid ${pid})`);
  }
  await waitForNodes(config, nodes);
  say(`cluster ${opts.name} is up: ${nodes.join(', ')}`);
  return config;
}

/**
 * What a cluster's controller has in its command line: its script, from source or bundled, from
 * any checkout (a `down` must stop the controller an `up` from elsewhere started), and cluster.
 */
const controllerMarker = (name: string) =>
  new RegExp(`(controller/main\\.ts|/controller\\.mjs) --cluster ${name}( |$)`);

/** Starts a node's agent inside its network namespace; returns its pid. */
async function startAgent(cluster: string, node: string): Promise<number> {
  const p = nodePaths(cluster, node);
  // nsenter joins only the network namespace: `ip netns exec` would also remount /sys, hiding
  // the cgroup mounts that runc needs.
  const argv = [
    'nsenter',
    `--net=/run/netns/${netnsName(cluster, node)}`,
    ...nodeEntry('agent/main.ts', ['--config', p.configFile]),
  ];
  return startDetached(argv, p.logFile, p.pidFile);
}

async function logTail(file: string, lines = 5): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '(no log)');
  return text.trim().split('\n').slice(-lines).join('\n');
}

/**
 * Waits for every node's heartbeat. An agent that runs but has not registered after 15 s is
 * restarted once; if it still has not after another 15 s, the error quotes its log.
 */
async function waitForNodes(config: ClusterConfig, nodes: string[]): Promise<void> {
  const redis = connectRedis(config.redis);
  const missing = async () => {
    const ready = await readyNodes(redis, config.name);
    return nodes.filter((n) => !ready.has(n));
  };
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      for (let i = 0; i < 150; i++) {
        if (!(await missing()).length) return;
        await sleep(100);
      }
      if (attempt === 0) {
        for (const node of await missing()) {
          const p = nodePaths(config.name, node);
          await stopProcess(p.pidFile, p.configFile);
          await startAgent(config.name, node);
        }
      }
    }
    const late = await missing();
    const logs = await Promise.all(
      late.map(
        async (n) =>
          `--- ${n} (${nodePaths(config.name, n).logFile}):\n${await logTail(nodePaths(config.name, n).logFile)}`,
      ),
    );
    throw new FerryError(
      'NodeNotFound',
      `agents of ${late.join(', ')} did not register within 30 s, even after a restart:\n${logs.join('\n')}`,
    );
  } finally {
    redis.disconnect();
  }
}

/** Removes cgroups the cluster's containers left behind, deepest first. */
async function removeCgroups(name: string): Promise<void> {
  const roots = await readdir('/sys/fs/cgroup').catch(() => [] as string[]);
  for (const ctl of roots) {
    const base = path.join('/sys/fs/cgroup', ctl, 'ferry', name);
    const dirs = await readdir(base, { recursive: true, withFileTypes: true }).catch(() => []);
    const subdirs = dirs.filter((d) => d.isDirectory()).map((d) => path.join(d.parentPath, d.name));
    for (const d of subdirs.sort((a, b) => b.length - a.length)) await rmdir(d).catch(() => undefined);
    await rmdir(base).catch(() => undefined);
  }
}

export async function clusterDown(name: string, say: (l: string) => void = () => undefined): Promise<void> {
  // Any name a cluster on this machine could have, but never a path out of ferry's folders.
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(name))
    throw new FerryError('InvalidInput', `cluster ${JSON.stringify(name)}: not a cluster name`);
  const config = await configForDown(name);
  const dir = clusterDir(name);
  await stopProcess(path.join(dir, 'controller.pid'), controllerMarker(name));
  // Nodes on disk count too: a crashed `up` may not have written cluster.json.
  const onDisk = await readdir(path.join(dir, 'nodes')).catch(() => [] as string[]);
  const nodes = [...new Set([...(config?.nodes ?? []), ...onDisk])].sort();
  for (const node of nodes) {
    const p = nodePaths(name, node);
    await stopProcess(p.pidFile, p.configFile);
    const list = await exec('runc', ['--root', p.runcRoot, 'list', '-q']);
    for (const id of list.stdout.split('\n').filter(Boolean))
      await exec('runc', ['--root', p.runcRoot, 'delete', '--force', id]);
    await unmount(p.imagesDir);
    await unmount(p.fsRoot);
    const index = Number(node.replace(/^node/, ''));
    await removeNodeNetwork(name, node, Number.isFinite(index) ? index : 0);
    say(`${node}: removed`);
  }
  await removeBridge(name);
  await removeCgroups(name);
  if (!config || config.ownRedis) await stopRedis(dir);
  await rm(dir, { recursive: true, force: true });
  await rm(path.join(FERRY_RUN, name), { recursive: true, force: true });
  say(`cluster ${name} is down`);
}
