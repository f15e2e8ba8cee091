// A token bucket for spec.strategy.bandwidth: how long to wait before sending more bytes so the
// average rate stays under the limit. The burst is a tenth of a second's worth, so even a short
// transfer keeps to the limit. Pure: the clock is passed in.
export class Throttle {
  private tokens: number;
  private last: number;
  private readonly burst: number;

  constructor(
    private readonly bytesPerSecond: number,
    now: number,
  ) {
    this.burst = bytesPerSecond / 10;
    this.tokens = this.burst;
    this.last = now;
  }

  /** Milliseconds to wait before `bytes` may go, taking them from the bucket. */
  delayFor(bytes: number, now: number): number {
    this.tokens = Math.min(
      this.bytesPerSecond,
      this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond,
    );
    this.last = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.bytesPerSecond) * 1000);
  }
}

/** Progress of a transfer for people: bytes, rate and, when the total is known, time left. Pure. */
export function progressReport(
  sent: number,
  total: number | undefined,
  startedMs: number,
  nowMs: number,
): Record<string, number> {
  const seconds = Math.max(0.001, (nowMs - startedMs) / 1000);
  const rate = Math.round(sent / seconds);
  const report: Record<string, number> = { bytes: sent, bytesPerSecond: rate };
  if (total !== undefined) {
    report.totalBytes = total;
    if (rate > 0) report.etaSeconds = Math.max(0, Math.round((total - sent) / rate));
  }
  return report;
}
