// The node registry: agents refresh a key with a short expiry; a node whose key expired is gone.
import type { Redis } from 'ioredis';
import { NodeInfoSchema, type NodeInfo } from '../api/v1alpha1/cluster.ts';
import { keyspace } from './keyspace.ts';

export type { NodeInfo };

export async function readyNodes(redis: Redis, cluster: string): Promise<Map<string, NodeInfo>> {
  const keys = await redis.keys(keyspace.node(cluster, '*'));
  const out = new Map<string, NodeInfo>();
  if (!keys.length) return out;
  const values = await redis.mget(keys);
  for (const v of values) {
    const p = v ? NodeInfoSchema.safeParse(JSON.parse(v)) : undefined;
    if (p?.success) out.set(p.data.node, p.data);
  }
  return out;
}

/** An agent's heartbeat: its entry, kept for `ttlMs` unless refreshed. */
export async function registerNode(
  redis: Redis,
  cluster: string,
  info: NodeInfo,
  ttlMs: number,
): Promise<void> {
  await redis.set(keyspace.node(cluster, info.node), JSON.stringify(info), 'PX', ttlMs);
}

/** An agent that stops cleanly leaves the registry at once rather than when its entry expires. */
export async function unregisterNode(redis: Redis, cluster: string, node: string): Promise<void> {
  await redis.del(keyspace.node(cluster, node));
}
