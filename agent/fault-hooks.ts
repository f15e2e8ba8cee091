// Named fault-injection points. Off unless the cluster was started with fault hooks on; then a test
// arms a point by writing to Redis, and the point fires once at the exact place in the code.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Redis } from 'ioredis';
import { FerryError } from '../lib/errors.ts';
import { currentScope } from '../lib/step-scope.ts';
import { keyspace } from '../lib/keyspace.ts';
import type { Logger } from '../lib/logger.ts';

export const HOOK_POINTS = [
  'source.preflight',
  'target.beforeRestore',
  'target.beforeVerify',
  'source.beforeCleanup',
  'source.afterCheckpoint',
  'source.beforeTransfer',
  'source.duringTransfer',
  'source.duringSync',
  'source.beforeSync',
] as const;
export type HookPoint = (typeof HOOK_POINTS)[number];

export const HookActionSchema = z.discriminatedUnion('action', [
  /** Overwrites the middle of a file in the migration's image folder with garbage. */
  z.strictObject({
    action: z.literal('corruptFile'),
    file: z.string(),
    migration: z.string().optional(),
    times: z.number().int().min(1).default(1),
  }),
  /** Breaks the transfer's TCP connection once this many bytes have been sent. */
  z.strictObject({
    action: z.literal('cut'),
    afterBytes: z.number().int().min(0),
    migration: z.string().optional(),
    times: z.number().int().min(1).default(1),
  }),
  /** Flips one byte of the data on the wire once this many bytes have been sent (after its checksum). */
  z.strictObject({
    action: z.literal('flip'),
    afterBytes: z.number().int().min(0),
    migration: z.string().optional(),
    times: z.number().int().min(1).default(1),
  }),
  /** Holds the step until a test sets the Redis key `keyspace.hookRelease(cluster, release)`. */
  z.strictObject({
    action: z.literal('block'),
    release: z.string(),
    migration: z.string().optional(),
    times: z.number().int().min(1).default(1),
  }),
  /** Throws a retryable error; `times` above the job's attempts makes the step fail for good. */
  z.strictObject({
    action: z.literal('fail'),
    message: z.string(),
    migration: z.string().optional(),
    times: z.number().int().min(1).default(1),
  }),
]);
export type HookAction = z.infer<typeof HookActionSchema>;
export type HookInput = z.input<typeof HookActionSchema>;

export class FaultHooks {
  constructor(
    private readonly enabled: boolean,
    private readonly redis: Redis,
    private readonly cluster: string,
    private readonly key: string,
    private readonly log: Logger,
  ) {}

  /** Takes an armed hook for the caller to carry out itself (actions that live inside a step). */
  async take(point: HookPoint, migrationName: string): Promise<HookAction | undefined> {
    if (!this.enabled) return undefined;
    const raw = await this.redis.hget(this.key, point);
    if (!raw) return undefined;
    const hook = HookActionSchema.parse(JSON.parse(raw));
    if (hook.migration && hook.migration !== migrationName) return undefined;
    if (hook.times > 1)
      await this.redis.hset(this.key, point, JSON.stringify({ ...hook, times: hook.times - 1 }));
    else await this.redis.hdel(this.key, point);
    this.log.warn({ point, hook }, 'fault hook fired');
    return hook;
  }

  /** Fires `point` if a test armed it for this migration; `imagesDir` is the migration's folder. */
  async fire(point: HookPoint, migrationName: string, imagesDir: string): Promise<void> {
    const hook = await this.take(point, migrationName);
    if (!hook) return;
    if (hook.action === 'fail') throw new FerryError('Internal', `fault hook ${point}: ${hook.message}`);
    if (hook.action === 'block') {
      const key = keyspace.hookRelease(this.cluster, hook.release);
      // A step stopped at its deadline lets go of its hook too.
      for (let i = 0; i < 1200 && !currentScope()?.stopped && !(await this.redis.exists(key)); i++)
        await new Promise((r) => setTimeout(r, 50));
      const stopped = currentScope()?.stopped;
      if (stopped) throw new FerryError('StepDeadline', stopped);
      return;
    }
    if (hook.action === 'cut' || hook.action === 'flip') return; // done inside the transfer (see take())
    const file = path.join(imagesDir, hook.file);
    const buf = await readFile(file);
    buf.fill(0xa5, Math.floor(buf.length / 4), Math.floor(buf.length / 2) + 1);
    await writeFile(file, buf);
  }
}
