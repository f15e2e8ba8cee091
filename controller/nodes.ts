// The node registry: agents refresh a key with a short expiry; a node whose key expired is gone.
import type { Redis } from 'ioredis';
import { z } from 'zod';

export const nodeKey = (cluster: string, node: string): string => `ferry-${cluster}:node:${node}`;

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

export async function readyNodes(redis: Redis, cluster: string): Promise<Map<string, NodeInfo>> {
  const keys = await redis.keys(nodeKey(cluster, '*'));
  const out = new Map<string, NodeInfo>();
  if (!keys.length) return out;
  const values = await redis.mget(keys);
  for (const v of values) {
    const p = v ? NodeInfoSchema.safeParse(JSON.parse(v)) : undefined;
    if (p?.success) out.set(p.data.node, p.data);
  }
  return out;
}
