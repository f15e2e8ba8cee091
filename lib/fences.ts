// Fences: an operator's word that a node is dead (powered off, its containers gone), as Kubernetes'
// `node.kubernetes.io/out-of-service` taint says it. A silent node is not a dead one: the controller
// acts around a silent node only where nothing it could still do can make a second copy, and waits
// elsewhere until the node answers again or is fenced (docs/fencing.md). A fenced node's agent takes
// no job; `ferry node unfence` lets it back.
import type { Redis } from 'ioredis';
import { keyspace } from './keyspace.ts';

export interface Fence {
  node: string;
  /** Who fenced it and why, for `ferry get nodes` and the logs. */
  reason: string;
  time: string;
}

export async function fenceNode(redis: Redis, cluster: string, f: Fence): Promise<void> {
  await redis.set(keyspace.fence(cluster, f.node), JSON.stringify(f));
}

export async function unfenceNode(redis: Redis, cluster: string, node: string): Promise<boolean> {
  return (await redis.del(keyspace.fence(cluster, node))) === 1;
}

export async function isFenced(redis: Redis, cluster: string, node: string): Promise<boolean> {
  return (await redis.exists(keyspace.fence(cluster, node))) === 1;
}

export async function fencedNodes(redis: Redis, cluster: string): Promise<Map<string, Fence>> {
  const keys = await redis.keys(keyspace.fence(cluster, '*'));
  const out = new Map<string, Fence>();
  if (!keys.length) return out;
  for (const raw of await redis.mget(keys)) {
    if (!raw) continue;
    const f = JSON.parse(raw) as Fence;
    out.set(f.node, f);
  }
  return out;
}
