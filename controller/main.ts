// The controller process for the local cluster: reads the cluster config, takes the leader lease,
// wakes on store changes and job events, and runs the reconcile loop until signalled.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ClusterConfigSchema } from '../api/v1alpha1/cluster.ts';
import { errorMessage } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { clusterConfigFile } from '../lib/paths.ts';
import { connectRedis } from '../lib/redis.ts';
import { Controller } from './controller.ts';
import { LeaderElector, RedisLease } from './leader.ts';
import { RedisMigrationStore } from './store/redis-store.ts';

/** A test arms it to crash the controller right after it wrote a given phase (fault hooks only). */
export const CrashHookSchema = z.strictObject({ phase: z.string(), migration: z.string() });
export const controllerHookKey = (cluster: string): string => `ferry-${cluster}:hooks:controller`;

async function main() {
  const i = process.argv.indexOf('--cluster');
  const name = (i > 0 ? process.argv[i + 1] : undefined) ?? 'local';
  const cfg = ClusterConfigSchema.parse(JSON.parse(await readFile(clusterConfigFile(name), 'utf8')));
  const log = createLogger('controller').child({ cluster: cfg.name });
  const redis = connectRedis(cfg.redis);
  const store = new RedisMigrationStore(redis, cfg.name);
  const elector = new LeaderElector(new RedisLease(redis, `ferry-${cfg.name}:leader`), log);
  const controller = new Controller({
    cluster: cfg.name,
    redis,
    redisConfig: cfg.redis,
    store,
    log,
    isLeader: elector.isLeader,
    ...(cfg.faultHooks
      ? {
          afterStatusWrite: async (m, phase) => {
            const raw = await redis.hget(controllerHookKey(cfg.name), 'crashAfterPhase');
            const hook = raw ? CrashHookSchema.parse(JSON.parse(raw)) : undefined;
            if (hook && hook.phase === phase && hook.migration === m.metadata.name) {
              await redis.hdel(controllerHookKey(cfg.name), 'crashAfterPhase');
              log.warn({ phase, migration: m.metadata.name }, 'fault hook: crashing after this status write');
              process.kill(process.pid, 'SIGKILL');
            }
          },
        }
      : {}),
  });
  const sub = connectRedis(cfg.redis);
  await sub.subscribe(store.channel);
  sub.on('message', controller.poke);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info({ sig }, 'stopping');
      void Promise.all([controller.stop(), elector.stop()]).finally(() => process.exit(0));
    });
  }
  await elector.start();
  log.info({ identity: elector.identity }, 'controller running');
  await controller.run();
}

void main().catch((err) => {
  console.error(errorMessage(err));
  process.exit(1);
});
