// Which memory strategy a migration uses. Pure: what preflight measured goes in, a mode and the
// reason for it come out (recorded in status.migrationState.modeReason).
import type { Migration, Mode } from '../../api/v1alpha1/migration.ts';
import { parseDuration } from '../../api/v1alpha1/quantity.ts';

export interface Measured {
  /** What the source's CRIU can do (criu check --feature, and a real lazy-pages round trip). */
  features: { memDirtyTrack: boolean; lazyPages: boolean };
  /** Why lazy pages do not work on the source, as its agent found at start-up. */
  lazyPagesProblem?: string | undefined;
  /** Resident memory of the workload: what a dump writes. */
  memoryBytes?: number | undefined;
  /** Rate of preflight's link probe to the target, bandwidth limit included. */
  linkBytesPerSecond?: number | undefined;
}

/**
 * Rates of this machine kind, from shared/environment.md and bench/downtime.ts: CRIU dumps about
 * 0.3 GB/s and restores about 0.6 GB/s; freezing, runc and the filesystem increment add a fixed
 * part. Auto only needs the right order of magnitude.
 */
export const RATES = { dumpBytesPerSecond: 300e6, restoreBytesPerSecond: 600e6, fixedMs: 400 };

/** Estimated freeze of a StopAndCopy: the dump streams to the target at the slower of the two rates. */
export function stopAndCopyDowntimeMs(memoryBytes: number, linkBytesPerSecond: number): number {
  const stream = Math.min(linkBytesPerSecond, RATES.dumpBytesPerSecond);
  return Math.round(
    RATES.fixedMs + (memoryBytes / stream) * 1000 + (memoryBytes / RATES.restoreBytesPerSecond) * 1000,
  );
}

const mib = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;

/** Why a mode cannot run on `source`, or undefined if it can. */
export function unsupported(mode: Mode, m: Measured, source: string): string | undefined {
  if (mode === 'PreCopy' && !m.features.memDirtyTrack)
    return `FeatureUnsupported: PreCopy needs soft-dirty memory tracking, and \`criu check --feature mem_dirty_track\` fails on ${source}`;
  if (mode === 'PostCopy' && !m.features.lazyPages)
    return `FeatureUnsupported: PostCopy needs CRIU lazy pages over the network, and they do not work on ${source}: ${m.lazyPagesProblem ?? 'userfaultfd missing'}`;
  return undefined;
}

/** The mode to use, or none with the reason (a Failed migration's failureReason). */
export function chooseMode(
  spec: Migration['spec'],
  m: Measured,
  source: string,
): { mode?: Mode; reason: string } {
  const asked = spec.strategy.mode;
  if (spec.source.pid) {
    // Its PIDs are the kernel's own: the source must be gone before the target restores.
    if (asked === 'StopAndCopy' || asked === 'Auto')
      return {
        mode: 'StopAndCopy',
        reason: 'a bare process tree moves by StopAndCopy: its PIDs must be free on the target',
      };
    return {
      reason: `FeatureUnsupported: a bare process tree (source.pid) moves by StopAndCopy only: its PIDs must be free on the target before it restores, so it cannot run on both sides as ${asked} needs`,
    };
  }
  if (asked !== 'Auto') {
    const why = unsupported(asked, m, source);
    return why ? { reason: why } : { mode: asked, reason: 'requested' };
  }
  const limitMs = parseDuration(spec.strategy.maxDowntime)!;
  if (m.memoryBytes === undefined || !m.linkBytesPerSecond)
    return {
      mode: 'StopAndCopy',
      reason: 'chosen by Auto: memory size or link rate unknown, so the simplest',
    };
  const estimate = stopAndCopyDowntimeMs(m.memoryBytes, m.linkBytesPerSecond);
  const facts = `${mib(m.memoryBytes)} over a ${mib(m.linkBytesPerSecond)}/s link: StopAndCopy would freeze about ${estimate} ms, maxDowntime ${spec.strategy.maxDowntime}`;
  if (estimate <= limitMs) return { mode: 'StopAndCopy', reason: `chosen by Auto: ${facts}` };
  // Too slow to copy frozen: prefer PreCopy (the source keeps running while most pages move),
  // then PostCopy (the target runs at once; a lost link after that loses the workload).
  if (m.features.memDirtyTrack) return { mode: 'PreCopy', reason: `chosen by Auto: ${facts}` };
  if (m.features.lazyPages)
    return { mode: 'PostCopy', reason: `chosen by Auto: ${facts}; no soft-dirty tracking for PreCopy` };
  const neither = `${source} has neither soft-dirty tracking (PreCopy) nor working lazy pages (PostCopy)`;
  // A freeze longer than asked is the user's to accept, never ferry's: refused unless the spec says.
  if (spec.strategy.overBudget === 'Refuse')
    return {
      reason: `DowntimeOverBudget: ${facts}; ${neither}. Nothing was frozen. Set spec.strategy.overBudget: Proceed to accept the longer freeze, or raise maxDowntime`,
    };
  return {
    mode: 'StopAndCopy',
    reason: `chosen by Auto: ${facts}; ${neither}, so the freeze will be longer than asked (overBudget: Proceed)`,
  };
}

/** The shortest deadline of a frozen step: below it, ordinary jitter (a slow fsync, a retried link) would trip it. */
export const MIN_STEP_DEADLINE_MS = 10_000;

/**
 * How long a step taken while the source is frozen may run before its agent stops it: four times
 * the freeze estimated in Preflight, at least MIN_STEP_DEADLINE_MS, at most progressTimeout.
 */
export function frozenStepDeadlineMs(
  estimatedFreezeMs: number | undefined,
  progressTimeoutMs: number,
): number {
  return Math.min(progressTimeoutMs, Math.max(MIN_STEP_DEADLINE_MS, 4 * (estimatedFreezeMs ?? 0)));
}
