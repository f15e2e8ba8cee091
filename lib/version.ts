// ferry's version (package.json), and where each running controller says its own: a hash in the
// cluster's Redis, one field per controller process, refreshed while it runs (`ferry version`).
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { keyspace } from './keyspace.ts';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** What a controller says of itself. */
export interface ControllerVersion {
  version: string;
  store: 'redis' | 'kubernetes';
  /** When it last said so (ms since the epoch): one silent for a minute is gone. */
  seen: number;
}

/** How often a controller says it again, and how long `ferry version` believes it. */
const EVERY_MS = 20_000;
export const STALE_MS = 60_000;

/** Says this controller's version now and every 20 s; returns how to stop and withdraw it. */
export function announceVersion(redis: Redis, cluster: string, store: ControllerVersion['store']) {
  const field = `${hostname()}/${process.pid}`;
  const say = () =>
    redis
      .hset(
        keyspace.controllers(cluster),
        field,
        JSON.stringify({ version: VERSION, store, seen: Date.now() }),
      )
      .catch(() => undefined); // an outage is the controller's to report, not this
  void say();
  const timer = setInterval(() => void say(), EVERY_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await redis.hdel(keyspace.controllers(cluster), field).catch(() => undefined);
  };
}

/** The controllers that said their version within the last minute, by host/pid. */
export async function controllerVersions(redis: Redis, cluster: string, now = Date.now()) {
  const all = await redis.hgetall(keyspace.controllers(cluster));
  return Object.entries(all)
    .map(([who, raw]) => ({ who, ...(JSON.parse(raw) as ControllerVersion) }))
    .filter((c) => now - c.seen < STALE_MS)
    .sort((a, b) => a.who.localeCompare(b.who));
}
