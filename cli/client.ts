// What CLI commands talk to: the cluster's Redis, its Migration store and its work bus.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Redis } from 'ioredis';
import type { ClusterConfig } from '../api/v1alpha1/cluster.ts';
import { readClusterConfig } from '../cluster/cluster.ts';
import { Bus } from '../lib/bus.ts';
import { RedisMigrationStore } from '../lib/store/redis-store.ts';
import { KubeMigrationStore, loadKubeConfig } from '../lib/store/kube-store.ts';
import type { MigrationStore } from '../lib/store/migration-store.ts';
import { FerryError } from '../lib/errors.ts';
import { connectRedis, redisWhere } from '../lib/redis.ts';

export interface Client {
  config: ClusterConfig;
  redis: Redis;
  store: MigrationStore;
  bus: Bus;
  /** Kubernetes: its client configuration, and the namespace its current context names. */
  kube?: { kc: KubeConfig; namespace: string };
  close(): Promise<void>;
}

/**
 * A client of a Kubernetes cluster alone, from anywhere (a laptop with no local cluster): the
 * Migrations through the API. ferry's Redis and work bus live inside that cluster, so what needs
 * them (a local cluster's containers, fences) is refused with where to run it instead.
 */
export function connectKube(kubeconfig?: string, context?: string): Client {
  const kc = loadKubeConfig(kubeconfig);
  if (context) {
    if (!kc.getContexts().some((c) => c.name === context))
      throw new FerryError(
        'InvalidInput',
        `--context: no context ${JSON.stringify(context)} in the kubeconfig (it has: ${
          kc
            .getContexts()
            .map((c) => c.name)
            .join(', ') || 'none'
        })`,
      );
    kc.setCurrentContext(context);
  }
  const current = kc.getContextObject(kc.getCurrentContext());
  const unavailable = (what: string) => (): never => {
    throw new FerryError(
      'FeatureUnsupported',
      `this command needs ${what}, which on Kubernetes lives inside the cluster: run it there (kubectl exec into the ferry controller's pod), or against a local cluster with --cluster NAME`,
    );
  };
  const client = {
    store: new KubeMigrationStore(kc),
    kube: { kc, namespace: current?.namespace ?? 'default' },
    async close() {},
  };
  for (const [field, what] of [
    ['config', "a local cluster's configuration"],
    ['redis', "ferry's Redis"],
    ['bus', "ferry's work bus (the node agents)"],
  ] as const)
    Object.defineProperty(client, field, { get: unavailable(what), enumerable: false });
  return client as unknown as Client;
}

/** The cluster's bus, and its Redis store, or the Kubernetes store when a kubeconfig is given. */
export async function connect(cluster: string, kubeconfig?: string): Promise<Client> {
  const config = await readClusterConfig(cluster);
  if (!config)
    throw new FerryError('NodeNotFound', `cluster ${cluster} is not up: run \`ferry cluster up\` first`);
  // Quiet: an outage is this command's error (ClusterUnavailable below), said once, with what to do.
  const redis = connectRedis(config.redis, { report: { down: () => undefined, up: () => undefined } });
  // Errors reach each command; ioredis's own "unhandled error" lines would only repeat them.
  let lastError: string | undefined;
  redis.on('error', (err: Error) => (lastError = err.message));
  const answered = await Promise.race([
    redis.ping().then(
      () => undefined,
      (err: Error) => lastError ?? err.message, // the connection's error says more than the retry count
    ),
    new Promise<string>((r) => setTimeout(() => r('no answer in 3 s'), 3000).unref()),
  ]);
  if (answered !== undefined) {
    redis.disconnect();
    const where = redisWhere(config.redis);
    throw new FerryError(
      'ClusterUnavailable',
      `cluster ${cluster}: its Redis at ${where} does not answer (${answered}); start it again with \`ferry --cluster ${cluster} cluster up\``,
    );
  }
  const bus = new Bus(redis, config.redis, config.name, { down: () => undefined, up: () => undefined });
  const kc = kubeconfig ? loadKubeConfig(kubeconfig) : undefined;
  return {
    config,
    redis,
    store: kc ? new KubeMigrationStore(kc) : new RedisMigrationStore(redis, config.name),
    ...(kc
      ? { kube: { kc, namespace: kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default' } }
      : {}),
    bus,
    async close() {
      await bus.close();
      redis.disconnect();
    },
  };
}
