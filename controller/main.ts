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
import { DashboardFeed } from './dashboard/collect.ts';
import { busPodAgents } from './kube/pod-ports.ts';
import { KubePodApi } from '../lib/kube/pods.ts';
import { keyspace } from '../lib/keyspace.ts';
import type { PodAgents } from './kube/pod-migration.ts';
import { PodRunner } from './kube/pod-runner.ts';
import { serveHttp } from './http.ts';
import { ControllerMetrics } from './metrics.ts';
import { DEFAULT_LIMITS } from './reconcile.ts';
import { crashHook } from './crash-hook.ts';
import { LeaderElector, RedisLease } from './leader.ts';
import { KubeLease } from './store/kube-lease.ts';
import { KubeMigrationStore, loadKubeConfig } from '../lib/store/kube-store.ts';
import { RedisMigrationStore } from '../lib/store/redis-store.ts';
import { reportOnce } from '../lib/store/migration-store.ts';

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
  --metrics-host H      address to serve them on (default 127.0.0.1; 0.0.0.0 in a pod)`;

async function main() {
  const { values } = parseArgs({
    options: {
      cluster: { type: 'string', default: 'local' },
      kubeconfig: { type: 'string' },
      'in-cluster': { type: 'boolean' },
      'lease-namespace': { type: 'string', default: process.env.FERRY_NAMESPACE ?? 'default' },
      'redis-url': { type: 'string', default: process.env.FERRY_REDIS_URL },
      'max-running': { type: 'string', default: String(DEFAULT_LIMITS.maxRunning) },
      'max-outbound-per-node': { type: 'string', default: String(DEFAULT_LIMITS.maxOutboundPerNode) },
      'metrics-port': { type: 'string' },
      'metrics-host': { type: 'string', default: '127.0.0.1' },
      help: { type: 'boolean' },
    },
  });
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
  const redis = connectRedis(redisConfig);
  const leaseMs = cfg?.leaseMs ?? 15_000;

  let store;
  let elector;
  let kc;
  if (kube) {
    // Without a file, the default chain: KUBECONFIG, ~/.kube/config, or the pod's service account.
    kc = loadKubeConfig(values.kubeconfig);
    store = new KubeMigrationStore(kc, log);
    elector = new LeaderElector(
      new KubeLease(kc, values['lease-namespace'], 'ferry-controller'),
      log,
      leaseMs,
    );
  } else {
    store = new RedisMigrationStore(
      redis,
      values.cluster,
      reportOnce((key, problem) =>
        log.warn({ migration: key, problem }, 'ignoring a stored Migration that fails the schema'),
      ),
    );
    elector = new LeaderElector(new RedisLease(redis, keyspace.leader(values.cluster)), log, leaseMs);
  }
  let metrics: ControllerMetrics | undefined;
  // Pods move only on Kubernetes; the runner reaches agents through the controller's bus.
  const pods: PodRunner | undefined =
    kc &&
    new PodRunner({
      store,
      pods: new KubePodApi(kc),
      agents: (m): PodAgents => busPodAgents(controller.bus, { uid: m.metadata.uid, name: m.metadata.name }),
      log,
      isLeader: elector.isLeader,
      onPhase: (m, next) => controller.podPhase(m, next),
    });
  const controller: Controller = new Controller({
    ...(pods ? { pods } : {}),
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
  // The cluster's metricsPort belongs to its own controller; one serving Kubernetes says its own.
  const metricsPort = Number(values['metrics-port'] ?? (kube ? 0 : (cfg?.metricsPort ?? 0)));
  if (metricsPort) {
    metrics = new ControllerMetrics({ store, bus: controller.bus, redis, cluster: values.cluster });
    // Metrics are for watching, not for running: a port already taken is logged, not fatal.
    const feed = new DashboardFeed({ store, bus: controller.bus, redis, cluster: values.cluster });
    await serveHttp({ metrics, feed, log }, metricsPort, values['metrics-host'])
      .then(({ port }) => log.info({ port }, 'dashboard at /, metrics at /metrics'))
      .catch((err: Error) =>
        log.error({ err: err.message, port: metricsPort }, 'cannot serve the dashboard'),
      );
  }
  await elector.start();
  log.info({ identity: elector.identity }, 'controller running');
  await controller.run();
}

void main().catch((err) => {
  console.error(errorMessage(err));
  process.exit(1);
});
