// Which migrations are running, as the controller says in Redis: a key per migration, set before
// it leaves Pending and rewritten at each phase change, naming its source, its target and its
// phase; when it ends, an end mark with its outcome replaces it. Agents read it to refuse what does
// not belong to a running migration (a replayed stream, a stalled job), to re-check after a long
// step that they are still expected to act (agent/fencing/), and to settle what a migration left on
// a node that returns late. The expiries only bound keys a crashed controller left behind.
import type { Redis } from 'ioredis';
import type { Phase } from '../api/v1alpha1/migration.ts';
import { keyspace } from './keyspace.ts';

const WEEK_SECONDS = 7 * 24 * 3600;

export interface LiveMigration {
  uid: string;
  source: string;
  target: string;
  /** The phase the controller has entered (or is about to write); absent in older marks. */
  phase?: Phase;
}

export type Outcome = 'Succeeded' | 'Failed';

export async function markLive(redis: Redis, cluster: string, m: LiveMigration): Promise<void> {
  const { uid: _uid, ...mark } = m;
  await redis.set(keyspace.live(cluster, m.uid), JSON.stringify(mark), 'EX', WEEK_SECONDS);
}

/** The migration ended: its live mark goes, and its outcome stays a week for late nodes. */
export async function markEnded(
  redis: Redis,
  cluster: string,
  uid: string,
  outcome: Outcome = 'Failed',
): Promise<void> {
  await redis
    .multi()
    .set(keyspace.ended(cluster, uid), outcome, 'EX', WEEK_SECONDS)
    .del(keyspace.live(cluster, uid))
    .exec();
}

export async function liveOf(redis: Redis, cluster: string, uid: string): Promise<LiveMigration | undefined> {
  const raw = await redis.get(keyspace.live(cluster, uid));
  return raw ? { uid, ...(JSON.parse(raw) as Omit<LiveMigration, 'uid'>) } : undefined;
}

export async function endedOf(redis: Redis, cluster: string, uid: string): Promise<Outcome | undefined> {
  const raw = await redis.get(keyspace.ended(cluster, uid));
  return raw === 'Succeeded' || raw === 'Failed' ? raw : undefined;
}

export async function isLive(redis: Redis, cluster: string, uid: string): Promise<boolean> {
  return (await redis.exists(keyspace.live(cluster, uid))) === 1;
}

/** The phases in which images and snapshots flow from source to target (and the link is probed). */
const SENDING_PHASES: readonly Phase[] = ['Preflight', 'Syncing', 'Checkpointing', 'Transferring'];

/** Whether node `target` should accept streams of migration `uid` from node `source` now. */
export async function transferExpected(redis: Redis, cluster: string, t: LiveMigration): Promise<boolean> {
  const live = await liveOf(redis, cluster, t.uid);
  return (
    live?.source === t.source &&
    live.target === t.target &&
    (live.phase === undefined || SENDING_PHASES.includes(live.phase))
  );
}
