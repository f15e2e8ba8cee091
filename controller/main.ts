// The controller process. With --cluster it serves a local cluster (Migrations in that cluster's
// Redis); with --kubeconfig it serves Kubernetes (Migrations as custom objects, a Lease for leader
// election, Events), using the local cluster's or --redis-url's Redis as the work bus to agents.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ClusterConfigSchema, type RedisConfig } from '../api/v1alpha1/cluster.ts';
import { errorMessage } from '../lib/errors.ts';
import { createLogger, type Logger } from '../lib/logger.ts';
import type { Redis } from 'ioredis';
import { clusterConfigFile } from '../lib/paths.ts';
import { connectRedis, logOutages } from '../lib/redis.ts';
import { Controller } from './controller.ts';
import { DashboardFeed } from './dashboard/collect.ts';
import { keyspace } from '../lib/keyspace.ts';
import { announceVersion } from '../lib/version.ts';
import { serveHttp } from './http.ts';
import { serveWebhook } from './webhook.ts';
import { ControllerMetrics } from './metrics.ts';
import { DEFAULT_LIMITS } from './reconcile.ts';
import { crashHook } from './crash-hook.ts';
import { LeaderElector, RedisLease } from './leader.ts';
import { RedisMigrationStore } from '../lib/store/redis-store.ts';
import { reportOnce, type MigrationStore } from '../lib/store/migration-store.ts';

const USAGE = `usage: controller [--cluster NAME] [--kubeconfig FILE | --in-cluster] [--redis-url URL]
  --cluster NAME        local cluster whose Redis is the work bus (default: local; kube in a pod)
  --kubeconfig FILE     keep Migrations in Kubernetes instead of the local cluster's Redis
  --in-cluster          the same, with the pod's service account (what the Helm chart runs)
  --lease-namespace NS  namespace of the leader-election Lease (default: default)
  --redis-url URL       work bus when there is no local cluster (default: $FERRY_REDIS_URL)
  --max-running N       migrations running at once in the cluster (default 5)
  --max-outbound-per-node N  migrations leaving one node at once (default 2)
  --metrics-port N      serve the ops dashboard at http://127.0.0.1:N/ and Prometheus metrics at
                        /metrics (default: the cluster's metricsPort; 0 turns them off)
  --metrics-host H      address to serve them on (default 127.0.0.1; 0.0.0.0 in a pod)
  --webhook-port N      serve the pods' admission webhook over HTTPS at /mutate-pods (Kubernetes:
                        StatefulSet pods; needs --webhook-cert and --webhook-key; default: off)
  --webhook-host H      address to serve it on (default 0.0.0.0)
  --webhook-cert FILE   its TLS certificate (PEM), --webhook-key FILE its key`;

const OPTIONS = {
  cluster: { type: 'string', default: 'local' },
  kubeconfig: { type: 'string' },
  'in-cluster': { type: 'boolean' },
  'lease-namespace': { type: 'string', default: process.env.FERRY_NAMESPACE ?? 'default' },
  'redis-url': { type: 'string', default: process.env.FERRY_REDIS_URL },
  'max-running': { type: 'string', default: String(DEFAULT_LIMITS.maxRunning) },
  'max-outbound-per-node': { type: 'string', default: String(DEFAULT_LIMITS.maxOutboundPerNode) },
  'metrics-port': { type: 'string' },
  'metrics-host': { type: 'string', default: '127.0.0.1' },
  'webhook-port': { type: 'string', default: process.env.FERRY_WEBHOOK_PORT },
  'webhook-host': { type: 'string', default: '0.0.0.0' },
  'webhook-cert': { type: 'string', default: process.env.FERRY_WEBHOOK_CERT },
  'webhook-key': { type: 'string', default: process.env.FERRY_WEBHOOK_KEY },
  help: { type: 'boolean' },
} as const;
type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

/**
 * Where Migrations live and who leads: Kubernetes (custom objects, a Lease; Pods and Nodes through
 * the API) or the cluster's Redis. The Kubernetes parts are loaded only when asked for.
 */
async function storeAndElector(values: Values, kube: boolean, redis: Redis, log: Logger, leaseMs: number) {
  if (kube) {
    const { kubeParts } = await import('./kube/wiring.ts');
    const k = kubeParts({
      kubeconfig: values.kubeconfig,
      leaseNamespace: values['lease-namespace'],
      leaseMs,
      log,
    });
    return { store: k.store as MigrationStore, elector: k.elector, kube: k };
  }
  const store = new RedisMigrationStore(
    redis,
    values.cluster,
    reportOnce((key, problem) =>
      log.warn({ migration: key, problem }, 'ignoring a stored Migration that fails the schema'),
    ),
  );
  return {
    store: store as MigrationStore,
    elector: new LeaderElector(new RedisLease(redis, keyspace.leader(values.cluster)), log, leaseMs),
    redisStore: store,
  };
}

/** The dashboard and /metrics; a port already taken is logged, not fatal: they are for watching. */
async function serveDashboard(
  deps: {
    store: MigrationStore;
    controller: Controller;
    redis: Redis;
    cluster: string;
    log: Logger;
    isLeader: () => boolean;
  },
  port: number,
  host: string,
) {
  const { store, controller, redis, cluster, log, isLeader } = deps;
  const metrics = new ControllerMetrics({ store, bus: controller.bus, redis, cluster, isLeader });
  const feed = new DashboardFeed({ store, bus: controller.bus, redis, cluster });
  await serveHttp({ metrics, feed, log }, port, host)
    .then(({ port: p }) => log.info({ port: p }, 'dashboard at /, metrics at /metrics'))
    .catch((err: Error) => log.error({ err: err.message, port }, 'cannot serve the dashboard'));
  return metrics;
}

async function main() {
  const { values } = parseArgs({ options: OPTIONS });
  if (values.help) return console.log(USAGE);
  const kube = values.kubeconfig !== undefined || values['in-cluster'] === true;
  const log = createLogger('controller').child({
    cluster: values.cluster,
    store: kube ? 'kubernetes' : 'redis',
  });
  const cfg = values['redis-url']
    ? undefined
    : ClusterConfigSchema.parse(JSON.parse(await readFile(clusterConfigFile(values.cluster), 'utf8')));
  const redisConfig: RedisConfig = values['redis-url'] ? { url: values['redis-url'] } : cfg!.redis;
  const redis = connectRedis(redisConfig, { report: logOutages(log), autoPipeline: true });
  const parts = await storeAndElector(values, kube, redis, log, cfg?.leaseMs ?? 15_000);
  const { store, elector } = parts;
  const kubeStore = parts.kube?.store;
  const pods = parts.kube?.pods;
  const nodes = parts.kube?.nodes;
  let metrics: ControllerMetrics | undefined;
  const controller: Controller = new Controller({
    ...(pods ? { pods } : {}),
    ...(nodes ? { nodes } : {}),
    onPhaseChange: (next) => metrics?.observe(next),
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
  if (kubeStore) await kubeStore.startInformer(controller.poke);
  if (parts.redisStore) {
    const sub = connectRedis(redisConfig, { report: logOutages(log) });
    await sub.subscribe(parts.redisStore.channel);
    sub.on('message', controller.poke);
  }
  const withdraw = announceVersion(redis, values.cluster, kube ? 'kubernetes' : 'redis');
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info({ sig }, 'stopping');
      kubeStore?.stopInformer();
      void Promise.all([withdraw(), controller.stop(), elector.stop()]).finally(() => process.exit(0));
    });
  }
  // The cluster's metricsPort belongs to its own controller; one serving Kubernetes says its own.
  const metricsPort = Number(values['metrics-port'] ?? (kube ? 0 : (cfg?.metricsPort ?? 0)));
  if (metricsPort)
    metrics = await serveDashboard(
      { store, controller, redis, cluster: values.cluster, log, isLeader: elector.isLeader },
      metricsPort,
      values['metrics-host'],
    );
  const webhookPort = Number(values['webhook-port'] ?? 0);
  if (webhookPort) {
    if (!values['webhook-cert'] || !values['webhook-key'])
      throw new Error(
        '--webhook-port needs --webhook-cert and --webhook-key: the API server calls webhooks over TLS',
      );
    await serveWebhook(store, log, {
      port: webhookPort,
      host: values['webhook-host'],
      certFile: values['webhook-cert'],
      keyFile: values['webhook-key'],
    });
    log.info({ port: webhookPort }, 'admission webhook at /mutate-pods');
  }
  await elector.start();
  log.info({ identity: elector.identity }, 'controller running');
  await controller.run();
}

void main().catch((err) => {
  console.error(errorMessage(err));
  process.exit(1);
});
