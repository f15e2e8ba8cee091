// The agent's lease: its heartbeat key in the node registry, written every 2 s with a 6 s expiry.
// The agent holds the lease from the moment it *began* a write that succeeded until 6 s later, on
// its own monotonic clock: the store's expiry counts from when the write arrived, so the agent's
// view always ends first. A lease that lapsed (the agent was paused, or could not reach the store)
// starts a new epoch when it is renewed: a step that began in an earlier epoch re-checks with the
// store that it is still wanted before it goes on (fencing/recheck.ts). docs/fencing.md.
import { performance } from 'node:perf_hooks';

export const HEARTBEAT_MS = 2000;
export const LEASE_MS = 6000;

export class Lease {
  private renewedAt = -Infinity;
  /** Counts the lapses: each renewal after a lapse starts a new epoch. */
  epoch = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Whether the lease is held now. */
  held(): boolean {
    return this.now() - this.renewedAt < LEASE_MS;
  }

  /** When a renewal is about to be written: the time it will count from if it succeeds. */
  mark(): number {
    return this.now();
  }

  /** A renewal begun at `startedAt` succeeded. True when it ends a lapse (a new epoch began). */
  renewed(startedAt: number): boolean {
    const lapsed = !this.held();
    this.renewedAt = Math.max(this.renewedAt, startedAt);
    if (lapsed) this.epoch++;
    return lapsed;
  }
}
