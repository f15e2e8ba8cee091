// What the simulated agents (bench/sim-agents.ts) answer for each job of a container migration:
// valid by the same schemas the controller parses real results with, which
// test/sim-results.test.ts checks, so a schema change cannot quietly fail every simulated step.
import type { Job } from '../api/v1alpha1/jobs.ts';

/** Milliseconds each step takes here: scaled-down versions of what real agents report. */
export const DELAY: Record<Job['kind'], number> = {
  run: 1,
  runImage: 1,
  runBundle: 1,
  verify: 1,
  verifyFeatures: 1,
  selfRequest: 1,
  list: 1,
  export: 1,
  import: 1,
  remove: 1,
  exec: 1,
  logs: 1,
  preflightSource: 5,
  preflightTarget: 5,
  sync: 20,
  checkpoint: 30,
  transfer: 50,
  restore: 30,
  verifyTarget: 10,
  cleanupSource: 5,
  cleanupTarget: 5,
  podFreeze: 1,
  podThaw: 1,
  podSync: 20,
  podCheckpoint: 30,
  podSend: 50,
  podImport: 10,
  podRemoveImages: 1,
  podVolumes: 1,
  podCleanup: 1,
  resumeSource: 5,
  rollbackTarget: 5,
};

const MiB = 2 ** 20;

/** The simulated answer to one job of a container migration's route (other kinds: undefined). */
export function simResult(kind: Job['kind'], container = 'c'): unknown {
  const now = new Date().toISOString();
  const volumes = [{ name: 'rootfs', driver: 'overlay', bytes: 2 * MiB }];
  switch (kind) {
    case 'preflightSource':
      return {
        status: 'running',
        pid: 1,
        memoryBytes: 64 * MiB,
        features: { memDirtyTrack: false, lazyPages: true },
      };
    case 'preflightTarget':
      return { imagesFreeBytes: 100 * 1024 * MiB, fsFreeBytes: 100 * 1024 * MiB };
    case 'sync':
      return { bytes: 2 * MiB, durationMs: DELAY.sync, files: 1, rounds: 1, volumes };
    case 'checkpoint':
      return { frozenAt: now, dumpMs: DELAY.checkpoint, imageBytes: 64 * MiB };
    case 'transfer':
      return { bytes: 64 * MiB, durationMs: DELAY.transfer, files: 20, volumes };
    case 'restore':
      return { restoredAt: now, restoreMs: DELAY.restore, pid: 1 };
    case 'verifyTarget':
      return { status: 'running', pid: 1 };
    case 'cleanupSource':
      return { removed: container, keptImages: false };
    case 'cleanupTarget':
      return { cleaned: container };
    case 'resumeSource':
      return { resumed: container, wasFrozen: false };
    case 'rollbackTarget':
      return { removedContainer: false };
    default:
      return undefined;
  }
}
