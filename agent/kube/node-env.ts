// An agent in a Kubernetes DaemonSet (charts/ferry templates/agent.yaml): its configuration comes
// from the pod's environment instead of a file `ferry cluster up` writes, and its peers from the
// node registry, all sharing the one SSH key of the chart's Secret. Pure functions; main.ts does I/O.
import ssh2 from 'ssh2';
import { AgentConfigSchema, type AgentConfig, type Peer } from '../../api/v1alpha1/cluster.ts';
import { FerryError } from '../../lib/errors.ts';
import type { NodeInfo } from '../../lib/node-registry.ts';

/** Where each AgentConfig field comes from; the chart sets these variables. */
const ENV: Partial<Record<keyof AgentConfig, string>> = {
  cluster: 'FERRY_CLUSTER',
  node: 'FERRY_NODE',
  address: 'FERRY_ADDRESS',
  sshPort: 'FERRY_SSH_PORT',
  redis: 'FERRY_REDIS_URL',
  fsRoot: 'FERRY_FS_ROOT',
  imagesDir: 'FERRY_IMAGES_DIR',
  runcRoot: 'FERRY_RUNC_ROOT',
  criuPath: 'FERRY_CRIU',
  keyFile: 'FERRY_SSH_KEY_FILE',
  gpuDevDir: 'FERRY_GPU_DEV_DIR',
};

const KUBE_ENV: Record<string, string> = {
  kubeletAddress: 'FERRY_ADDRESS',
  kubeletPort: 'FERRY_KUBELET_PORT',
  tokenFile: 'FERRY_TOKEN_FILE',
  caFile: 'FERRY_KUBELET_CA',
  runtime: 'FERRY_RUNTIME',
};

/** The agent's configuration from its pod's environment; a missing or bad variable is named. */
export function agentConfigFromEnv(env: NodeJS.ProcessEnv): AgentConfig {
  const opt = '/opt/ferry/bin';
  const candidate = {
    cluster: env.FERRY_CLUSTER ?? 'kube',
    node: env.FERRY_NODE,
    address: env.FERRY_ADDRESS,
    sshPort: Number(env.FERRY_SSH_PORT ?? 2222),
    redis: env.FERRY_REDIS_URL ? { url: env.FERRY_REDIS_URL } : undefined,
    fsRoot: env.FERRY_FS_ROOT ?? '/var/lib/ferry/fs',
    imagesDir: env.FERRY_IMAGES_DIR ?? '/var/lib/ferry/images',
    runcRoot: env.FERRY_RUNC_ROOT ?? '/run/containerd/runc/k8s.io',
    cgroupParent: '/kubepods',
    criuPath: env.FERRY_CRIU ?? `${opt}/criu`,
    keyFile: env.FERRY_SSH_KEY_FILE ?? '/etc/ferry/ssh/ssh-privatekey',
    peersFile: '/run/ferry/peers.json',
    busybox: '/bin/busybox',
    workloadBinary: `${opt}/workload`,
    featuresBinary: `${opt}/features`,
    ferryctlBinary: `${opt}/ferryctl`,
    runDir: '/run/ferry',
    faultHooks: false,
    labels: {},
    // GPU nodes (the chart's agent.gpu): the node's /dev, mounted where the pod's own is not.
    ...(env.FERRY_GPU_DEV_DIR ? { gpuDevDir: env.FERRY_GPU_DEV_DIR } : {}),
    // The pod path: the kubelet on this node's address, the pod's service account token.
    kube: {
      kubeletAddress: env.FERRY_ADDRESS,
      kubeletPort: Number(env.FERRY_KUBELET_PORT ?? 10250),
      tokenFile: env.FERRY_TOKEN_FILE ?? '/var/run/secrets/kubernetes.io/serviceaccount/token',
      ...(env.FERRY_KUBELET_CA ? { caFile: env.FERRY_KUBELET_CA } : {}),
      insecureSkipTLSVerify: env.FERRY_KUBELET_INSECURE === 'true',
      runtime: env.FERRY_RUNTIME ?? 'containerd',
      // containerd's shim runs the pods' containers under the runc root the chart mounts.
      runcRoot: env.FERRY_RUNC_ROOT ?? '/run/containerd/runc/k8s.io',
    },
  };
  const parsed = AgentConfigSchema.safeParse(candidate);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => {
    const field = String(i.path[0]) as keyof typeof candidate;
    const name = field === 'kube' ? KUBE_ENV[String(i.path[1])] : ENV[field];
    return `${name ?? i.path.join('.')}: ${candidate[field] === undefined ? 'not set' : i.message}`;
  });
  throw new FerryError('InvalidInput', `agent environment: ${problems.join('; ')}`);
}

/** The OpenSSH public key line of a private key (the chart's Secret holds a PEM ECDSA key). */
export function publicKeyLine(privateKey: string): string {
  const k = ssh2.utils.parseKey(privateKey);
  if (k instanceof Error) throw new FerryError('InvalidInput', `the agents' SSH key: ${k.message}`);
  return `${k.type} ${k.getPublicSSH().toString('base64')}`;
}

/** Every registered node is a peer, pinned to the shared key. Pure. */
export function peersFromRegistry(nodes: Map<string, NodeInfo>, publicKey: string): Peer[] {
  return [...nodes.values()]
    .sort((a, b) => a.node.localeCompare(b.node))
    .map((n) => ({ node: n.node, address: n.address, sshPort: n.sshPort, publicKey }));
}
