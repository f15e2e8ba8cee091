// What CLI commands talk to: the cluster's Redis, its Migration store and its work bus.
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
  close(): Promise<void>;
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
  return {
    config,
    redis,
    store: kubeconfig
      ? new KubeMigrationStore(loadKubeConfig(kubeconfig))
      : new RedisMigrationStore(redis, config.name),
    bus,
    async close() {
      await bus.close();
      redis.disconnect();
    },
  };
}
