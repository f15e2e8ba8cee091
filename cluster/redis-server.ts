// The cluster's Redis: an existing one if the user named it, else a private redis-server on a unix
// socket (mode 0700, so only root reaches the bus) with an append-only file, so a restart keeps jobs.
import { Redis } from 'ioredis';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisConfig } from '../api/v1alpha1/cluster.ts';
import { FerryError } from '../lib/errors.ts';
import { run } from '../lib/exec.ts';
import { runningPid, stopProcess } from './processes.ts';

async function pings(cfg: RedisConfig): Promise<boolean> {
  const r =
    'path' in cfg
      ? new Redis({ path: cfg.path, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
      : new Redis(cfg.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function ensureRedis(dir: string, url?: string): Promise<{ redis: RedisConfig; own: boolean }> {
  if (url) {
    if (!(await pings({ url }))) throw new FerryError('NodeNotFound', `Redis at ${url} does not answer`);
    return { redis: { url }, own: false };
  }
  const cfg = { path: path.join(dir, 'redis.sock') };
  const pidFile = path.join(dir, 'redis.pid');
  if ((await runningPid(pidFile, 'redis-server')) && (await pings(cfg))) return { redis: cfg, own: true };
  await run('redis-server', [
    '--port',
    '0',
    '--unixsocket',
    cfg.path,
    '--unixsocketperm',
    '700',
    '--daemonize',
    'yes',
    '--pidfile',
    pidFile,
    '--dir',
    dir,
    '--logfile',
    path.join(dir, 'redis.log'),
    '--appendonly',
    'yes',
    '--save',
    '',
  ]);
  for (let i = 0; i < 100; i++) {
    if (await pings(cfg)) return { redis: cfg, own: true };
    await sleep(100);
  }
  throw new FerryError('Internal', `redis-server did not come up; see ${dir}/redis.log`);
}

export async function stopRedis(dir: string): Promise<void> {
  await stopProcess(path.join(dir, 'redis.pid'), 'redis-server');
}
