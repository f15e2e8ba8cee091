// The controller's fault hook, for crash-safety tests: armed through Redis, it kills the controller
// right after it wrote a given phase for a given migration. Off unless the cluster has fault hooks.
import { z } from 'zod';
import type { Redis } from 'ioredis';
import type { StoredMigration } from '../api/v1alpha1/migration.ts';
import { keyspace } from '../lib/keyspace.ts';
import type { Logger } from '../lib/logger.ts';

export const CrashHookSchema = z.strictObject({ phase: z.string(), migration: z.string() });

export function crashHook(redis: Redis, cluster: string, log: Logger) {
  return async (m: StoredMigration, phase: string): Promise<void> => {
    const raw = await redis.hget(keyspace.controllerHooks(cluster), 'crashAfterPhase');
    const hook = raw ? CrashHookSchema.parse(JSON.parse(raw)) : undefined;
    if (!hook || hook.phase !== phase || hook.migration !== m.metadata.name) return;
    await redis.hdel(keyspace.controllerHooks(cluster), 'crashAfterPhase');
    log.warn({ phase, migration: m.metadata.name }, 'fault hook: crashing after this status write');
    process.kill(process.pid, 'SIGKILL');
  };
}
