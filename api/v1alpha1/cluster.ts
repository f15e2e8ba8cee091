// The local cluster's configuration and each agent's configuration, written by `ferry cluster up`.
import { z } from 'zod';
import { NameSchema } from './migration.ts';

export const RedisConfigSchema = z.union([
  z.strictObject({ path: z.string().startsWith('/') }),
  z.strictObject({ url: z.url() }),
]);
export type RedisConfig = z.infer<typeof RedisConfigSchema>;

export const PeerSchema = z.strictObject({
  node: NameSchema,
  address: z.ipv4(),
  sshPort: z.number().int().min(1).max(65535),
  /** OpenSSH public key line; pinned as the node's host key and authorised as its client key. */
  publicKey: z.string().startsWith('ssh-'),
});
export type Peer = z.infer<typeof PeerSchema>;
export const PeersSchema = z.array(PeerSchema);

/** How an agent on a Kubernetes node reaches its kubelet and its container runtime (the pod path). */
export const KubeNodeSchema = z.strictObject({
  /** The kubelet's address and port: the node's own, 10250, in a cluster. */
  kubeletAddress: z.ipv4(),
  kubeletPort: z.number().int().min(1).max(65535).default(10250),
  /** Bearer token file: the agent's service account token. */
  tokenFile: z.string().startsWith('/'),
  /** CA of the kubelet's serving certificate; the system's CAs without it. */
  caFile: z.string().startsWith('/').optional(),
  insecureSkipTLSVerify: z.boolean().default(false),
  /** The runtime whose image store receives checkpoint images. */
  runtime: z.enum(['containerd', 'cri-o']),
  /**
   * containerd's CRI socket and the runc root its shim runs the k8s.io namespace's containers
   * under: ferry dumps a containerd pod's containers itself there (agent/kube/containerd-dump.ts).
   */
  criSocket: z.string().startsWith('/').default('/run/containerd/containerd.sock'),
  runcRoot: z.string().startsWith('/').default('/run/containerd/runc/k8s.io'),
  /** The kubelet's root folder: pods/UID/volumes/kubernetes.io~empty-dir/NAME are emptyDirs. */
  kubeletDir: z.string().startsWith('/').default('/var/lib/kubelet'),
  /** containerd's ctr, which imports checkpoint images into its store. */
  ctr: z.string().min(1).default('ctr'),
  /** containers-storage's location (CRI-O), when not the system's. */
  imageStore: z
    .strictObject({
      root: z.string().startsWith('/'),
      runRoot: z.string().startsWith('/'),
      driver: z.string().regex(/^[a-z0-9]+$/),
    })
    .optional(),
});
export type KubeNode = z.infer<typeof KubeNodeSchema>;

/** A device-mapper thin pool on a node, for dm-thin volumes (agent/snapshot/dm-thin-driver.ts). */
export const ThinPoolSchema = z.strictObject({
  /** dm name of the pool: /dev/mapper/POOL. */
  pool: z.string().regex(/^[A-Za-z0-9_.-]+$/),
  /** Its metadata device, read by thin_dump and thin_delta. */
  metadata: z.string().startsWith('/dev/'),
});
export type ThinPoolConfig = z.infer<typeof ThinPoolSchema>;

export const AgentConfigSchema = z.strictObject({
  cluster: z.string(),
  node: NameSchema,
  address: z.ipv4(),
  sshPort: z.number().int(),
  redis: RedisConfigSchema,
  /** btrfs filesystem root holding containers/, snapshots/ and incoming/. */
  fsRoot: z.string().startsWith('/'),
  /** The node's thin pool, where it has one: dm-thin volumes are made and received there. */
  thinPool: ThinPoolSchema.optional(),
  /** Where CRIU images live (a tmpfs, mode 0700). */
  imagesDir: z.string().startsWith('/'),
  runcRoot: z.string().startsWith('/'),
  /** cgroup parent for this node's containers, so simulated nodes never collide. */
  cgroupParent: z.string().startsWith('/'),
  criuPath: z.string().startsWith('/'),
  keyFile: z.string().startsWith('/'),
  peersFile: z.string().startsWith('/'),
  /** Static binaries copied into every workload's root filesystem. */
  busybox: z.string().startsWith('/'),
  workloadBinary: z.string().startsWith('/'),
  featuresBinary: z.string().startsWith('/'),
  ferryctlBinary: z.string().startsWith('/'),
  /** The node's run directory; per-container self-service sockets live below it. */
  runDir: z.string().startsWith('/'),
  /** Named fault-injection hooks; off unless a test cluster turns them on. */
  faultHooks: z.boolean().default(false),
  /**
   * ferry's CUDA helper, with any arguments before the operation (workload/cuda-ckpt.c; a test
   * cluster runs its fake through node).
   */
  cudaHelper: z.array(z.string()).min(1).default(['/opt/ferry/bin/ferry-cuda']),
  /** Where this node's NVIDIA device nodes are (a test cluster's fake ones are elsewhere). */
  gpuDevDir: z.string().startsWith('/').default('/dev'),
  /** Node labels, matched by Migration target node selectors. */
  labels: z.record(z.string(), z.string()).default({}),
  /** Set on Kubernetes nodes (and test clusters with fake kubelets): pods can move. */
  kube: KubeNodeSchema.optional(),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/**
 * A local cluster's name: it goes into the names of network interfaces and namespaces, which Linux
 * limits to 15 characters (`fbr-NAME`, `fv-NAME-N`, …). Checked where it is given (`cluster up`).
 */
export const ClusterNameSchema = z
  .string()
  .regex(
    /^[a-z0-9]{1,5}$/,
    'a cluster name is 1 to 5 lowercase letters or digits (it names network interfaces)',
  );

export const ClusterConfigSchema = z.strictObject({
  name: ClusterNameSchema,
  /** First three octets of the node subnet, e.g. "10.77.0"; the bridge is .1, node N is .(10+N). */
  subnet: z.string().regex(/^\d{1,3}\.\d{1,3}\.\d{1,3}$/),
  nodes: z.array(NameSchema),
  redis: RedisConfigSchema,
  /** true when ferry started the Redis server and must stop it on `cluster down`. */
  ownRedis: z.boolean(),
  faultHooks: z.boolean(),
  /** How long the controller's leader lease lasts; a crashed leader is replaced after this. */
  leaseMs: z.number().int().min(1000).max(120_000).default(15_000),
  /** Where the controller serves Prometheus metrics on 127.0.0.1; 0: not at all. */
  metricsPort: z.number().int().min(0).max(65535).default(0),
});
export type ClusterConfig = z.infer<typeof ClusterConfigSchema>;

/** What an agent publishes in the node registry with each heartbeat (lib/node-registry.ts). */
export const NodeInfoSchema = z.object({
  node: z.string(),
  address: z.string(),
  sshPort: z.number(),
  criuVersion: z.string(),
  criuProblem: z.string().nullable(),
  features: z.object({ memDirtyTrack: z.boolean(), lazyPages: z.boolean() }).optional(),
  labels: z.record(z.string(), z.string()).default({}),
  pid: z.number(),
  time: z.string(),
});
export type NodeInfo = z.infer<typeof NodeInfoSchema>;
