// The agent's heartbeat: its entry in the node registry, refreshed every 2 s with a 6 s expiry (a
// node whose entry expired is gone), and, where every agent holds the same key (Kubernetes), the
// peers file rebuilt from the registry each time.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Peer } from '../api/v1alpha1/cluster.ts';
import { readyNodes, registerNode } from '../lib/node-registry.ts';
import type { AgentContext } from './context.ts';
import { peersFromRegistry } from './kube/node-env.ts';

export async function writePeers(file: string, peers: Peer[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(`${file}.new`, JSON.stringify(peers), { mode: 0o600 });
  await rename(`${file}.new`, file);
}

export async function startHeartbeat(
  ctx: AgentContext,
  sharedPublicKey: string | undefined,
): Promise<{ stop(): void }> {
  const { config, log, redis } = ctx;
  const beat = async () => {
    const info = {
      node: config.node,
      address: config.address,
      sshPort: config.sshPort,
      criuVersion: ctx.criuVersion,
      criuProblem: ctx.criuProblem ?? null,
      features: ctx.features,
      labels: { 'kubernetes.io/hostname': config.node, ...config.labels },
      pid: process.pid,
      time: new Date().toISOString(),
    };
    await registerNode(redis, config.cluster, info, 6000).catch((err: Error) =>
      log.warn({ err: err.message }, 'heartbeat failed'),
    );
    if (sharedPublicKey)
      await readyNodes(redis, config.cluster)
        .then((nodes) => writePeers(config.peersFile, peersFromRegistry(nodes, sharedPublicKey)))
        .catch((err: Error) => log.warn({ err: err.message }, 'cannot refresh peers from the registry'));
  };
  await beat();
  const timer = setInterval(() => void beat(), 2000);
  return { stop: () => clearInterval(timer) };
}
