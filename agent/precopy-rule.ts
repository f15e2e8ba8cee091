// When the source stops its pre-dump rounds and freezes. Pure; agent/precopy.ts runs the rounds.

/**
 * P.Haul's rule for ending PreCopy rounds: stop after `maxIterations` rounds, or once a round dirties
 * 64 pages or fewer (the rest is cheap to copy frozen), or when the dirty set grows by more than
 * 10% over the round before (the workload dirties memory faster than we copy it).
 */
export const PRECOPY = { minDirtyPages: 64, maxGrowth: 0.1 };

export function precopyStop(dirtyPages: readonly number[], maxIterations: number): string | undefined {
  const n = dirtyPages.length;
  const last = dirtyPages[n - 1];
  if (last === undefined) return undefined;
  if (n >= maxIterations) return `reached maxIterations (${maxIterations})`;
  if (last <= PRECOPY.minDirtyPages) return `round ${n} dirtied ${last} pages (<= ${PRECOPY.minDirtyPages})`;
  const prev = dirtyPages[n - 2];
  if (prev !== undefined && last > prev * (1 + PRECOPY.maxGrowth))
    return `dirty set grew from ${prev} to ${last} pages (> ${PRECOPY.maxGrowth * 100}%)`;
  return undefined;
}
