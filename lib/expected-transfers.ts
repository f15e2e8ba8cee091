// Which image streams a node accepts: the controller says, in Redis, that node T expects migration
// U from node S for as long as U runs (set before it leaves Pending, removed when it ends); a
// receiver refuses any other stream, so a stream replayed from an ended migration, or one made up
// by a peer, writes nothing. The expiry only bounds a key a crashed controller left behind.
import type { Redis } from 'ioredis';

const WEEK_SECONDS = 7 * 24 * 3600;

export const expectedKey = (cluster: string, target: string, uid: string): string =>
  `ferry-${cluster}:expect:${target}:${uid}`;

export async function expectTransfer(
  redis: Redis,
  cluster: string,
  t: { target: string; uid: string; source: string },
): Promise<void> {
  await redis.set(expectedKey(cluster, t.target, t.uid), t.source, 'EX', WEEK_SECONDS);
}

export async function endTransfer(redis: Redis, cluster: string, target: string, uid: string): Promise<void> {
  await redis.del(expectedKey(cluster, target, uid));
}

export async function transferExpected(
  redis: Redis,
  cluster: string,
  t: { target: string; uid: string; source: string },
): Promise<boolean> {
  return (await redis.get(expectedKey(cluster, t.target, t.uid))) === t.source;
}
