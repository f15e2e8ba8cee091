// What every job handler of an agent needs: its configuration, its runtime, its paths and logger.
import type { Redis } from 'ioredis';
import type { AgentConfig } from '../api/v1alpha1/cluster.ts';
import type { Logger } from '../lib/logger.ts';
import { fsLayout } from '../lib/paths.ts';
import type { Runc } from './runtime/runc.ts';
import type { FaultHooks } from './fault-hooks.ts';
import type { SelfService } from './self-service.ts';

export interface AgentContext {
  config: AgentConfig;
  runc: Runc;
  layout: ReturnType<typeof fsLayout>;
  log: Logger;
  redis: Redis;
  privateKey: string;
  hooks: FaultHooks;
  /** Result of `criu check` at start-up: undefined when CRIU works, else why not. */
  criuProblem: string | undefined;
  criuVersion: string;
  /** CRIU features the strategies need, from `criu check --feature` at start-up. */
  features: { memDirtyTrack: boolean; lazyPages: boolean };
  /** Per-container self-service sockets (self-checkpoint requests). */
  self: SelfService;
  /** Reports progress of the running job (bytes so far); a no-op outside jobs. */
  progress: (p: Record<string, number | string>) => void;
}
