// Which migrations are running, as the controller says in Redis: a key per migration, set before
// it leaves Pending and removed when it ends, naming its source and target. Agents read it to
// refuse what does not belong to a running migration: an image stream replayed from an ended one
// or made up by a peer (the receiver), a job of an ended one (a stalled job a returning node would
// run again), and leftovers to sweep (gc.ts). The expiry only bounds a key a crashed controller
// left behind.
import type { Redis } from 'ioredis';
import { keyspace } from './keyspace.ts';

const WEEK_SECONDS = 7 * 24 * 3600;

export interface LiveMigration {
  uid: string;
  source: string;
  target: string;
}

export async function markLive(redis: Redis, cluster: string, m: LiveMigration): Promise<void> {
  await redis.set(
    keyspace.live(cluster, m.uid),
    JSON.stringify({ source: m.source, target: m.target }),
    'EX',
    WEEK_SECONDS,
  );
}

export async function markEnded(redis: Redis, cluster: string, uid: string): Promise<void> {
  await redis.del(keyspace.live(cluster, uid));
}

async function liveOf(
  redis: Redis,
  cluster: string,
  uid: string,
): Promise<Omit<LiveMigration, 'uid'> | undefined> {
  const raw = await redis.get(keyspace.live(cluster, uid));
  return raw ? (JSON.parse(raw) as Omit<LiveMigration, 'uid'>) : undefined;
}

export async function isLive(redis: Redis, cluster: string, uid: string): Promise<boolean> {
  return (await redis.exists(keyspace.live(cluster, uid))) === 1;
}

/** Whether node `target` should accept streams of migration `uid` from node `source` now. */
export async function transferExpected(redis: Redis, cluster: string, t: LiveMigration): Promise<boolean> {
  const live = await liveOf(redis, cluster, t.uid);
  return live?.source === t.source && live.target === t.target;
}

export async function liveUids(redis: Redis, cluster: string): Promise<Set<string>> {
  const prefix = keyspace.live(cluster, '');
  return new Set((await redis.keys(`${prefix}*`)).map((k) => k.slice(prefix.length)));
}
