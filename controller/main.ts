// The controller process for the local cluster: reads the cluster config, takes the leader lease,
// wakes on store changes and job events, and runs the reconcile loop until signalled.
import { readFile } from 'node:fs/promises';
import { ClusterConfigSchema } from '../api/v1alpha1/cluster.ts';
import { errorMessage } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { clusterConfigFile } from '../lib/paths.ts';
import { connectRedis } from '../lib/redis.ts';
import { Controller } from './controller.ts';
import { crashHook } from './crash-hook.ts';
import { LeaderElector, RedisLease } from './leader.ts';
import { RedisMigrationStore } from './store/redis-store.ts';

async function main() {
  const i = process.argv.indexOf('--cluster');
  const name = (i > 0 ? process.argv[i + 1] : undefined) ?? 'local';
  const cfg = ClusterConfigSchema.parse(JSON.parse(await readFile(clusterConfigFile(name), 'utf8')));
  const log = createLogger('controller').child({ cluster: cfg.name });
  const redis = connectRedis(cfg.redis);
  const store = new RedisMigrationStore(redis, cfg.name);
  const elector = new LeaderElector(new RedisLease(redis, `ferry-${cfg.name}:leader`), log, cfg.leaseMs);
  const controller = new Controller({
    cluster: cfg.name,
    redis,
    redisConfig: cfg.redis,
    store,
    log,
    isLeader: elector.isLeader,
    ...(cfg.faultHooks ? { afterStatusWrite: crashHook(redis, cfg.name, log) } : {}),
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
