// When the store forgot a migration (Redis wiped) after its source handed the workload over, only
// the target knows whether it runs it. The source asks through Redis (still reachable, only empty)
// and the target answers from its own node-local record: 'targetRuns' (the source copy must go) or
// 'targetDropped' (it holds nothing: the source runs again). Keys expire within an hour.
import type { Redis } from 'ioredis';
import { keyspace } from './keyspace.ts';

export type Verdict = 'targetRuns' | 'targetDropped';
const HOUR = 3600;

export async function askTarget(redis: Redis, cluster: string, target: string, uid: string): Promise<void> {
  await redis
    .multi()
    .hset(keyspace.asks(cluster, target), uid, '1')
    .expire(keyspace.asks(cluster, target), HOUR)
    .exec();
}

export async function asksFor(redis: Redis, cluster: string, node: string): Promise<string[]> {
  return redis.hkeys(keyspace.asks(cluster, node));
}

export async function answer(
  redis: Redis,
  cluster: string,
  node: string,
  uid: string,
  v: Verdict,
): Promise<void> {
  await redis
    .multi()
    .set(keyspace.verdict(cluster, uid), v, 'EX', HOUR)
    .hdel(keyspace.asks(cluster, node), uid)
    .exec();
}

export async function verdictOf(redis: Redis, cluster: string, uid: string): Promise<Verdict | undefined> {
  const v = await redis.get(keyspace.verdict(cluster, uid));
  return v === 'targetRuns' || v === 'targetDropped' ? v : undefined;
}

export async function forgetVerdict(redis: Redis, cluster: string, uid: string): Promise<void> {
  await redis.del(keyspace.verdict(cluster, uid));
}
