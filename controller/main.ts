// The controller process. With --cluster it serves a local cluster (Migrations in that cluster's
// Redis); with --kubeconfig it serves Kubernetes (Migrations as custom objects, a Lease for leader
// election, Events), using the local cluster's or --redis-url's Redis as the work bus to agents.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ClusterConfigSchema, type RedisConfig } from '../api/v1alpha1/cluster.ts';
import { errorMessage } from '../lib/errors.ts';
import { createLogger } from '../lib/logger.ts';
import { clusterConfigFile } from '../lib/paths.ts';
import { connectRedis } from '../lib/redis.ts';
import { Controller } from './controller.ts';
import { DEFAULT_LIMITS } from './reconcile.ts';
import { crashHook } from './crash-hook.ts';
import { LeaderElector, RedisLease } from './leader.ts';
import { KubeLease } from './store/kube-lease.ts';
import { KubeMigrationStore, loadKubeConfig } from './store/kube-store.ts';
import { RedisMigrationStore } from './store/redis-store.ts';

const USAGE = `usage: controller [--cluster NAME] [--kubeconfig FILE [--lease-namespace NS]] [--redis-url URL]
  --cluster NAME        local cluster whose Redis is the work bus (default: local)
  --kubeconfig FILE     keep Migrations in Kubernetes instead of the local cluster's Redis
  --lease-namespace NS  namespace of the leader-election Lease (default: default)
  --redis-url URL       work bus when there is no local cluster
  --max-running N       migrations running at once in the cluster (default 5)
  --max-outbound-per-node N  migrations leaving one node at once (default 2)`;

async function main() {
  const { values } = parseArgs({
    options: {
      cluster: { type: 'string', default: 'local' },
      kubeconfig: { type: 'string' },
      'lease-namespace': { type: 'string', default: process.env.FERRY_NAMESPACE ?? 'default' },
      'redis-url': { type: 'string' },
      'max-running': { type: 'string', default: String(DEFAULT_LIMITS.maxRunning) },
      'max-outbound-per-node': { type: 'string', default: String(DEFAULT_LIMITS.maxOutboundPerNode) },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return console.log(USAGE);
  const log = createLogger('controller').child({
    cluster: values.cluster,
    store: values.kubeconfig ? 'kubernetes' : 'redis',
  });
  const cfg = values['redis-url']
    ? undefined
    : ClusterConfigSchema.parse(JSON.parse(await readFile(clusterConfigFile(values.cluster), 'utf8')));
  const redisConfig: RedisConfig = values['redis-url'] ? { url: values['redis-url'] } : cfg!.redis;
  const redis = connectRedis(redisConfig);
  const leaseMs = cfg?.leaseMs ?? 15_000;

  let store;
  let elector;
  if (values.kubeconfig) {
    const kc = loadKubeConfig(values.kubeconfig);
    store = new KubeMigrationStore(kc, log);
    elector = new LeaderElector(
      new KubeLease(kc, values['lease-namespace'], 'ferry-controller'),
      log,
      leaseMs,
    );
  } else {
    store = new RedisMigrationStore(redis, values.cluster);
    elector = new LeaderElector(new RedisLease(redis, `ferry-${values.cluster}:leader`), log, leaseMs);
  }
  const controller = new Controller({
    cluster: values.cluster,
    redis,
    redisConfig,
    store,
    log,
    isLeader: elector.isLeader,
    limits: {
      maxRunning: Number(values['max-running']),
      maxOutboundPerNode: Number(values['max-outbound-per-node']),
    },
    ...(cfg?.faultHooks ? { afterStatusWrite: crashHook(redis, values.cluster, log) } : {}),
  });
  if (store instanceof KubeMigrationStore) await store.startInformer(controller.poke);
  else {
    const sub = connectRedis(redisConfig);
    await sub.subscribe(store.channel);
    sub.on('message', controller.poke);
  }
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info({ sig }, 'stopping');
      if (store instanceof KubeMigrationStore) store.stopInformer();
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
