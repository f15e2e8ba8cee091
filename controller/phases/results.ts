// What a finished phase's results add to status.migrationState: sizes, times, downtime. Pure; the
// results were parsed by their schemas when observed (facts.ts), so no field is guessed at here.
import type { VolumeBytes } from '../../api/v1alpha1/job-results.ts';
import type { MigrationState, Phase } from '../../api/v1alpha1/migration.ts';
import type { StepFacts } from './facts.ts';

type Volume = NonNullable<MigrationState['volumes']>[number];

/** Adds a step's per-volume byte counts to migrationState.volumes, by volume name. */
function withVolumes(
  state: MigrationState,
  reported: VolumeBytes[] | undefined,
  field: 'bytesBeforeFreeze' | 'bytesDuringFreeze',
): MigrationState {
  if (!reported) return state;
  const volumes = [...(state.volumes ?? [])];
  for (const v of reported) {
    const i = volumes.findIndex((x) => x.name === v.name);
    const entry: Volume = { ...(volumes[i] ?? { name: v.name, driver: v.driver }), [field]: v.bytes };
    if (i >= 0) volumes[i] = entry;
    else volumes.push(entry);
  }
  return { ...state, volumes };
}

/** Leaves out fields that are undefined, so a status only carries what was measured. */
const defined = <T extends object>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

function afterSyncing(state: MigrationState, jobs: StepFacts): MigrationState {
  const r = jobs.sync?.result;
  if (!r) return state;
  return withVolumes({ ...state, bytesBeforeFreeze: r.bytes }, r.volumes, 'bytesBeforeFreeze');
}

function afterCheckpointing(state: MigrationState, jobs: StepFacts): MigrationState {
  const r = jobs.checkpoint?.result;
  if (!r) return state;
  return {
    ...state,
    ...defined({
      frozenAt: r.frozenAt,
      dumpMs: r.dumpMs,
      imageBytes: r.imageBytes,
      lazyPagesPort: r.lazyPagesPort,
      // StopAndCopy streams the memory while dumping: those bytes crossed during the freeze.
      bytesDuringFreeze: r.streamedBytes,
      iterations: r.iterations,
      gpu: r.gpu,
    }),
  };
}

function afterTransferring(state: MigrationState, jobs: StepFacts): MigrationState {
  const r = jobs.transfer?.result;
  if (!r) return state;
  // Everything sent while frozen over the time spent sending it: with StopAndCopy streaming, most
  // of it went during the dump, so the dump's time counts too.
  const streamed = state.bytesDuringFreeze ?? 0;
  const sendingMs = r.durationMs + (streamed ? (state.dumpMs ?? 0) : 0);
  const throughput = sendingMs ? Math.round(((r.bytes + streamed) * 1000) / sendingMs) : undefined;
  return {
    ...withVolumes(state, r.volumes, 'bytesDuringFreeze'),
    bytesDuringFreeze: r.bytes + streamed,
    transferMs: r.durationMs,
    ...defined({ throughputBytesPerSecond: throughput }),
  };
}

function afterRestoring(state: MigrationState, jobs: StepFacts): MigrationState {
  const r = jobs.restore?.result;
  if (!r) return state;
  const downtimeMs = state.frozenAt ? Date.parse(r.restoredAt) - Date.parse(state.frozenAt) : undefined;
  const gpu =
    state.gpu && r.gpuRestoreMs !== undefined ? { ...state.gpu, restoreMs: r.gpuRestoreMs } : state.gpu;
  return { ...state, restoredAt: r.restoredAt, restoreMs: r.restoreMs, ...defined({ downtimeMs, gpu }) };
}

/** A rollback that thawed a frozen source: the freeze it suffered, from the freeze to running again. */
function afterRollingBack(state: MigrationState, jobs: StepFacts): MigrationState {
  const r = jobs.resumeSource?.result;
  if (!r?.wasFrozen || !r.resumedAt) return state;
  const downtimeMs = state.frozenAt ? Date.parse(r.resumedAt) - Date.parse(state.frozenAt) : undefined;
  return { ...state, resumedAt: r.resumedAt, ...defined({ downtimeMs }) };
}

const RECORDERS: Partial<Record<Phase, (s: MigrationState, j: StepFacts) => MigrationState>> = {
  RollingBack: afterRollingBack,
  Syncing: afterSyncing,
  Checkpointing: afterCheckpointing,
  Transferring: afterTransferring,
  Restoring: afterRestoring,
};

/** What a finished phase's results add to migrationState. */
export function recordResults(phase: Phase, state: MigrationState, jobs: StepFacts): MigrationState {
  return RECORDERS[phase]?.(state, jobs) ?? state;
}
