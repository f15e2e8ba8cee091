// Connections to the cluster's Redis (a unix socket for the local cluster, a URL elsewhere).
import { Redis } from 'ioredis';
import type { RedisOptions } from 'bullmq';
import type { RedisConfig } from '../api/v1alpha1/cluster.ts';

/** Where a Redis is, for people: its socket, or its URL's host (a URL may carry a password). */
export const redisWhere = (cfg: RedisConfig): string => ('path' in cfg ? cfg.path : new URL(cfg.url).host);

/** Says so once when a connection loses its Redis, and once when it is back: not at every retry. */
export interface OutageReport {
  down(line: string): void;
  up(line: string): void;
}
const toStderr: OutageReport = {
  down: (line) => process.stderr.write(`ferry: ${line}\n`),
  up: (line) => process.stderr.write(`ferry: ${line}\n`),
};

export function reportOutages(redis: Redis, where: string, report: OutageReport = toStderr): void {
  let down = false;
  // With an 'error' listener, ioredis no longer prints an "Unhandled error event" and a stack
  // trace at every reconnection attempt; the outage is said once, and its end.
  redis.on('error', (err: Error) => {
    if (down) return;
    down = true;
    report.down(`Redis at ${where} does not answer (${err.message}); reconnecting`);
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    report.up(`Redis at ${where} answers again`);
  });
}

/** BullMQ workers need maxRetriesPerRequest: null so blocking commands are never cut short. */
export function connectRedis(
  cfg: RedisConfig,
  opts: { forWorker?: boolean; report?: OutageReport; autoPipeline?: boolean } = {},
): Redis {
  const common = {
    maxRetriesPerRequest: opts.forWorker ? null : 3,
    lazyConnect: false,
    // Commands issued in the same tick leave in one write: a process that sends many at once (the
    // controller, a thousand Migrations a pass) otherwise makes a system call per command.
    enableAutoPipelining: opts.autoPipeline ?? false,
  };
  const redis = 'path' in cfg ? new Redis({ path: cfg.path, ...common }) : new Redis(cfg.url, common);
  reportOutages(redis, redisWhere(cfg), opts.report);
  return redis;
}

/**
 * For connections BullMQ makes itself (queues, queue events, workers), which report every failed
 * reconnection as an 'error' and print it with its stack when nobody listens: the first error of
 * an outage is said, the rest only once a minute while it lasts.
 */
export function errorLatch(where: string, report: OutageReport = toStderr): (err: Error) => void {
  let said = 0;
  return (err) => {
    const now = Date.now();
    if (now - said < 60_000) return;
    said = now;
    report.down(`Redis at ${where}: ${err.message}; reconnecting`);
  };
}

/** Whether an error is the connection to Redis failing, rather than something a command did. */
export function connectionLost(err: Error & { code?: string }): boolean {
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(err.code ?? '') ||
    /Connection is closed|connect E[A-Z]+|Stream isn't writeable/.test(err.message)
  );
}

/** An outage report through a logger (agents, the controller). */
export const logOutages = (log: { warn(msg: string): void; info(msg: string): void }): OutageReport => ({
  down: (line) => log.warn(line),
  up: (line) => log.info(line),
});

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
