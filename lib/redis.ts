// Connections to the cluster's Redis (a unix socket for the local cluster, a URL elsewhere).
import { Redis } from 'ioredis';
import type { RedisOptions } from 'bullmq';
import type { RedisConfig } from '../api/v1alpha1/cluster.ts';

/** BullMQ workers need maxRetriesPerRequest: null so blocking commands are never cut short. */
export function connectRedis(cfg: RedisConfig, opts: { forWorker?: boolean } = {}): Redis {
  const common = { maxRetriesPerRequest: opts.forWorker ? null : 3, lazyConnect: false };
  return 'path' in cfg ? new Redis({ path: cfg.path, ...common }) : new Redis(cfg.url, common);
}

/** ioredis options for a connection BullMQ makes and closes itself (blocking readers). */
export function redisOptions(cfg: RedisConfig): RedisOptions {
  if ('path' in cfg) return { path: cfg.path, maxRetriesPerRequest: null };
  const u = new URL(cfg.url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}
