// What every job handler of an agent needs: its configuration, its runtime, its paths and logger.
import type { Redis } from 'ioredis';
import type { AgentConfig } from '../api/v1alpha1/cluster.ts';
import type { Logger } from '../lib/logger.ts';
import { fsLayout } from '../lib/paths.ts';
import type { Runc } from './runtime/runc.ts';
import type { FaultHooks } from './fault-hooks.ts';
import type { SelfService } from './self-service.ts';
import type { TunnelPermits } from './transfer/tunnels.ts';
import type { CriuServer } from './criu/criu-server.ts';
import type { Lease } from './fencing/lease.ts';
import type { CudaHelper } from './gpu/cuda-helper.ts';

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
  /** Why lazy pages (PostCopy) do not work on this node, when they do not. */
  lazyPagesProblem: string | undefined;
  /** Per-container self-service sockets (self-checkpoint requests). */
  self: SelfService;
  /** Reports progress of the running job (bytes so far); a no-op outside jobs. */
  progress: (p: Record<string, number | string>) => void;
  /** Loopback ports peers may reach through page tunnels (CRIU page servers we started). */
  tunnels: TunnelPermits;
  /**
   * CRIU helpers that outlive the job that started them (PostCopy's lazy page server on the
   * source, the lazy-pages daemon on the target), by migration uid.
   */
  background: Map<string, CriuServer>;
  /** The node's lease (its heartbeat), held on the agent's monotonic clock (fencing/lease.ts). */
  lease: Lease;
  /** Migrations with a job running here now, by uid (how many): the watchdog leaves them alone. */
  inFlight: Map<string, number>;
  /** ferry's CUDA helper, for GPU workloads (agent/gpu). */
  cuda: CudaHelper;
}
