// The agent's heartbeat: its entry in the node registry, refreshed every 2 s with a 6 s expiry,
// which is also its lease (fencing/lease.ts: a node whose entry expired is silent, and acts no
// more on its own), and, where every agent holds the same key (Kubernetes), the peers file rebuilt
// from the registry each time.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Peer } from '../api/v1alpha1/cluster.ts';
import { readyNodes, registerNode } from '../lib/node-registry.ts';
import type { AgentContext } from './context.ts';
import { HEARTBEAT_MS, LEASE_MS } from './fencing/lease.ts';
import { peersFromRegistry } from './kube/node-env.ts';

export async function writePeers(file: string, peers: Peer[]): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(`${file}.new`, JSON.stringify(peers), { mode: 0o600 });
  await rename(`${file}.new`, file);
}

export async function startHeartbeat(
  ctx: AgentContext,
  sharedPublicKey: string | undefined,
  /** The lease was renewed after a lapse (a pause, a lost store): settle what may have moved on. */
  onReacquired: () => void = () => undefined,
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
    const startedAt = ctx.lease.mark();
    const wasHeld = ctx.lease.held();
    const ok = await registerNode(redis, config.cluster, info, LEASE_MS).then(
      () => true,
      (err: Error) => {
        log.warn({ err: err.message }, 'heartbeat failed');
        return false;
      },
    );
    if (ok && ctx.lease.renewed(startedAt) && ctx.lease.epoch > 1) {
      log.warn(
        { epoch: ctx.lease.epoch, wasHeld },
        'lease renewed after a lapse: re-checking what this node holds',
      );
      onReacquired();
    }
    if (sharedPublicKey)
      await readyNodes(redis, config.cluster)
        .then((nodes) => writePeers(config.peersFile, peersFromRegistry(nodes, sharedPublicKey)))
        .catch((err: Error) => log.warn({ err: err.message }, 'cannot refresh peers from the registry'));
  };
  await beat();
  const timer = setInterval(() => void beat(), HEARTBEAT_MS);
  return { stop: () => clearInterval(timer) };
}
