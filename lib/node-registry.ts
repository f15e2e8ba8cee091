// The node registry: agents refresh a key with a short expiry; a node whose key expired is gone.
import type { Redis } from 'ioredis';
import { NodeInfoSchema, type NodeInfo } from '../api/v1alpha1/cluster.ts';
import { FerryError } from './errors.ts';
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

/**
 * Refuses a node with no live agent, naming the live ones. One key read when it is there; the
 * whole registry only to say what is, when it is not.
 */
export async function requireLiveNode(redis: Redis, cluster: string, node: string): Promise<void> {
  if ((await redis.exists(keyspace.node(cluster, node))) === 1) return;
  const known = [...(await readyNodes(redis, cluster)).keys()].sort().join(', ') || 'none';
  throw new FerryError('NodeNotFound', `node ${node} has no live agent (no heartbeat); live nodes: ${known}`);
}

/**
 * An agent's heartbeat: its entry, kept for `ttlMs` unless refreshed, and the time it beat, kept
 * for good (seenNodes): a node that stops beating is down, not forgotten.
 */
export async function registerNode(
  redis: Redis,
  cluster: string,
  info: NodeInfo,
  ttlMs: number,
): Promise<void> {
  await redis
    .multi()
    .set(keyspace.node(cluster, info.node), JSON.stringify(info), 'PX', ttlMs)
    .hset(keyspace.nodesSeen(cluster), info.node, String(Date.now()))
    .exec();
}

/** Every node whose agent ever beat here, live or not, with when it last did (ms since the epoch). */
export async function seenNodes(redis: Redis, cluster: string): Promise<Map<string, number>> {
  const all = await redis.hgetall(keyspace.nodesSeen(cluster));
  return new Map(Object.entries(all).map(([node, ms]) => [node, Number(ms)]));
}

/** Forgets a node taken out of the cluster for good; it comes back if its agent beats again. */
export async function forgetNode(redis: Redis, cluster: string, node: string): Promise<boolean> {
  return (await redis.hdel(keyspace.nodesSeen(cluster), node)) === 1;
}

/** An agent that stops cleanly leaves the registry at once rather than when its entry expires. */
export async function unregisterNode(redis: Redis, cluster: string, node: string): Promise<void> {
  await redis.del(keyspace.node(cluster, node));
}
