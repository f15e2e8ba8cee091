// What CLI commands talk to: the cluster's Redis, its Migration store and its work bus.
import type { Redis } from 'ioredis';
import type { ClusterConfig } from '../api/v1alpha1/cluster.ts';
import { readClusterConfig } from '../cluster/cluster.ts';
import { Bus } from '../controller/bus.ts';
import { RedisMigrationStore } from '../controller/store/redis-store.ts';
import { FerryError } from '../lib/errors.ts';
import { connectRedis } from '../lib/redis.ts';

export interface Client {
  config: ClusterConfig;
  redis: Redis;
  store: RedisMigrationStore;
  bus: Bus;
  close(): Promise<void>;
}

export async function connect(cluster: string): Promise<Client> {
  const config = await readClusterConfig(cluster);
  if (!config)
    throw new FerryError('NodeNotFound', `cluster ${cluster} is not up: run \`ferry cluster up\` first`);
  const redis = connectRedis(config.redis);
  const bus = new Bus(redis, config.redis, config.name);
  return {
    config,
    redis,
    store: new RedisMigrationStore(redis, config.name),
    bus,
    async close() {
      await bus.close();
      redis.disconnect();
    },
  };
}
