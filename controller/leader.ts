// Leader election: only the replica holding the lease acts, so two controllers never both enqueue
// or write status. The local cluster's lease is a Redis key (SET NX PX, renewed by its holder);
// the Kubernetes one is a coordination.k8s.io Lease (store/kube-lease.ts). Both follow client-go's
// timing: a lease lasts `durationMs`, its holder renews every durationMs/3, and a replica that
// could not renew in time stops acting before anyone else can take over.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../lib/logger.ts';

export interface LeaseBackend {
  /** Takes the lease if free or expired, or renews it if held by `holder`. True when held after. */
  tryAcquireOrRenew(holder: string, durationMs: number): Promise<boolean>;
  release(holder: string): Promise<void>;
}

/**
 * How long this replica may still act is measured on a monotonic clock: a wall clock stepped back
 * (NTP, an operator) would otherwise stretch a lease the others already take as expired.
 */
const monotonic = (): number => performance.now();

export class LeaderElector {
  readonly identity = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private validUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;

  constructor(
    private readonly backend: LeaseBackend,
    private readonly log: Logger,
    private readonly durationMs = 15_000,
    private readonly onChange: (leading: boolean) => void = () => undefined,
  ) {}

  isLeader = (): boolean => this.leading && monotonic() < this.validUntil;

  private async tick(): Promise<void> {
    const started = monotonic();
    const held = await this.backend.tryAcquireOrRenew(this.identity, this.durationMs).catch((err: Error) => {
      this.log.warn({ err: err.message }, 'lease renewal failed');
      return false;
    });
    // Stop acting a margin before the lease could expire for others.
    if (held) this.validUntil = started + (this.durationMs * 2) / 3;
    const now = held && monotonic() < this.validUntil;
    if (now !== this.leading) {
      this.leading = now;
      this.log.info({ identity: this.identity }, now ? 'became leader' : 'lost leadership');
      this.onChange(now);
    }
  }

  async start(): Promise<void> {
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.durationMs / 3);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.leading) await this.backend.release(this.identity).catch(() => undefined);
    this.leading = false;
  }
}

const RENEW = `
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class RedisLease implements LeaseBackend {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  async tryAcquireOrRenew(holder: string, durationMs: number): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.key, holder, String(durationMs))) === 1;
  }

  async release(holder: string): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key, holder);
  }
}
