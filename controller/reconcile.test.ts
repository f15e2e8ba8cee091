import { test } from 'node:test';
import assert from 'node:assert/strict';
import { keyspace } from '../lib/keyspace.ts';
import type { MigrationInput, Phase, StoredMigration } from '../api/v1alpha1/migration.ts';
import {
  DEFAULT_LIMITS,
  decide,
  type Action,
  type Facts,
  type JobFact,
  type Load,
  type NodeFact,
  type StepName,
} from './reconcile.ts';
import { done, failed } from '../test/fixtures/job-facts.ts';
import { storedMigration } from '../test/fixtures/migrations.ts';

const NOW = '2026-01-01T00:00:05.000Z';
const nodes = (...names: string[]): Map<string, NodeFact> =>
  new Map(names.map((n) => [n, { labels: { 'kubernetes.io/hostname': n } }]));
const BOTH = nodes('node1', 'node2');
const IDLE: Load = { running: 0, outbound: {}, inbound: {} };

const migration = storedMigration;

const active: JobFact = { state: 'active' };
const facts = (jobs: Partial<Record<StepName, JobFact>>, live = BOTH, load = IDLE): Facts => ({
  now: NOW,
  nodes: live,
  jobs,
  load,
  limits: DEFAULT_LIMITS,
});
const FEATURES = { features: { memDirtyTrack: false, lazyPages: true } };
const steps = (actions: Action[]) => actions.map((a) => ('step' in a ? [a.step, a.node] : [a.type]));

interface Row {
  name: string;
  phase: Phase;
  facts: Facts;
  extra?: Partial<StoredMigration['status']>;
  spec?: Partial<MigrationInput['spec']>;
  meta?: Partial<StoredMigration['metadata']>;
  next: Phase;
  actions: Array<string[]>;
  reason?: RegExp;
  /** Where Pending placed it. */
  target?: string;
}

const LATE = { ...facts({}), now: '2026-01-01T01:00:00.000Z' }; // an hour after T0: every timeout passed

const table: Row[] = [
  // Pending: placement, guards and limits, before anything runs.
  {
    name: 'Pending with both nodes alive moves to Preflight',
    phase: 'Pending',
    facts: facts({}),
    next: 'Preflight',
    actions: [],
  },
  {
    name: 'Pending with the target node missing fails before anything runs',
    phase: 'Pending',
    facts: facts({}, nodes('node1')),
    next: 'Failed',
    actions: [],
    reason: /NodeNotFound: target node node2 is not registered/,
  },
  {
    name: 'Pending with the source node missing fails before anything runs',
    phase: 'Pending',
    facts: facts({}, nodes('node2')),
    next: 'Failed',
    actions: [],
    reason: /NodeNotFound: source node node1/,
  },
  {
    name: 'Pending waits while the cluster runs its limit of migrations',
    phase: 'Pending',
    facts: facts({}, BOTH, { running: 5, outbound: {}, inbound: {} }),
    next: 'Pending',
    actions: [],
  },
  {
    name: 'a second Migration of a workload being moved is refused, naming the one that holds it',
    phase: 'Pending',
    facts: facts({}, BOTH, {
      running: 1,
      outbound: { node1: 1 },
      inbound: {},
      moving: { 'container web on node1': 'default/first' },
    }),
    next: 'Failed',
    actions: [],
    reason: /^WorkloadBusy: container web on node1 is being moved by Migration default\/first/,
  },
  {
    name: 'Pending waits while its source node has 2 outbound migrations',
    phase: 'Pending',
    facts: facts({}, BOTH, { running: 2, outbound: { node1: 2 }, inbound: {} }),
    next: 'Pending',
    actions: [],
  },
  {
    name: 'a selector with no match other than the source fails',
    phase: 'Pending',
    spec: { target: { nodeSelector: { disk: 'ssd' } } },
    facts: facts({}),
    next: 'Failed',
    actions: [],
    reason: /no live, uncordoned node other than node1 matches disk=ssd/,
  },
  {
    name: 'a selector places by the Node labels, never on a cordoned Node',
    phase: 'Pending',
    spec: { target: { nodeSelector: { pool: 'stateful' } } },
    facts: facts(
      {},
      new Map([
        ['node1', { labels: { pool: 'stateful' } }],
        ['node2', { labels: { pool: 'stateful' }, unschedulable: true }],
        ['node3', { labels: { pool: 'stateful' } }],
      ]),
    ),
    next: 'Preflight',
    actions: [],
    target: 'node3',
  },
  {
    name: 'a cordoned target node is refused while Pending',
    phase: 'Pending',
    facts: facts(
      {},
      new Map([
        ['node1', { labels: {} }],
        ['node2', { labels: {}, unschedulable: true }],
      ]),
    ),
    next: 'Failed',
    actions: [],
    reason: /^NodeNotFound: target node node2 is cordoned/,
  },
  // Preflight: checks, then the mode.
  {
    name: 'Preflight checks the source first',
    phase: 'Preflight',
    facts: facts({}),
    next: 'Preflight',
    actions: [['preflightSource', 'node1']],
  },
  {
    name: 'Preflight waits while one check runs',
    phase: 'Preflight',
    facts: facts({ preflightSource: done(FEATURES), preflightTarget: active }),
    next: 'Preflight',
    actions: [],
  },
  {
    name: 'a missing container fails in Preflight, with nothing frozen',
    phase: 'Preflight',
    facts: facts({
      preflightSource: failed('ContainerNotFound: container web on node1 is absent'),
      preflightTarget: done(),
    }),
    next: 'Failed',
    actions: [],
    reason: /preflightSource on node1 failed: ContainerNotFound/,
  },
  {
    name: 'Preflight passes into Syncing',
    phase: 'Preflight',
    facts: facts({ preflightSource: done(FEATURES), preflightTarget: done() }),
    next: 'Syncing',
    actions: [],
  },
  {
    name: 'PreCopy is refused in preflight without soft-dirty tracking',
    phase: 'Preflight',
    spec: { strategy: { mode: 'PreCopy' } },
    facts: facts({ preflightSource: done(FEATURES), preflightTarget: done() }),
    next: 'Failed',
    actions: [],
    reason: /FeatureUnsupported: PreCopy needs soft-dirty memory tracking.*mem_dirty_track.* fails on node1/,
  },
  // The data path.
  {
    name: 'Syncing enqueues the live filesystem send',
    phase: 'Syncing',
    facts: facts({}),
    next: 'Syncing',
    actions: [['sync', 'node1']],
  },
  {
    name: 'Syncing done moves to Checkpointing',
    phase: 'Syncing',
    facts: facts({ sync: done({ bytes: 100 }) }),
    next: 'Checkpointing',
    actions: [],
  },
  {
    name: 'a failed sync rolls back',
    phase: 'Syncing',
    facts: facts({ sync: failed('TransferFailed: reset') }),
    next: 'RollingBack',
    actions: [],
    reason: /sync on node1 failed/,
  },
  {
    name: 'Checkpointing enqueues the dump on the source',
    phase: 'Checkpointing',
    facts: facts({}),
    next: 'Checkpointing',
    actions: [['checkpoint', 'node1']],
  },
  {
    name: 'a failed dump rolls back so the frozen source resumes',
    phase: 'Checkpointing',
    facts: facts({ checkpoint: failed('CriuDumpFailed: CRIU says: Error (x): y') }),
    next: 'RollingBack',
    actions: [],
    reason: /CriuDumpFailed/,
  },
  {
    name: 'Checkpointing done moves to Transferring',
    phase: 'Checkpointing',
    facts: facts({ checkpoint: done({ frozenAt: NOW, dumpMs: 200 }) }),
    next: 'Transferring',
    actions: [],
  },
  {
    name: 'Transferring waits on an active transfer',
    phase: 'Transferring',
    facts: facts({ transfer: active }),
    next: 'Transferring',
    actions: [],
  },
  {
    name: 'a failed transfer rolls back',
    phase: 'Transferring',
    facts: facts({ transfer: failed('IntegrityError: sha256 mismatch') }),
    next: 'RollingBack',
    actions: [],
    reason: /transfer on node1 failed: IntegrityError/,
  },
  {
    name: 'Restoring enqueues the restore on the target',
    phase: 'Restoring',
    facts: facts({}),
    next: 'Restoring',
    actions: [['restore', 'node2']],
  },
  {
    name: 'a failed restore rolls back with CRIU’s reason',
    phase: 'Restoring',
    facts: facts({ restore: failed('CriuRestoreFailed: CRIU says: Error (criu/pstree.c:1): bad image') }),
    next: 'RollingBack',
    actions: [],
    reason: /restore on node2 failed: CriuRestoreFailed: CRIU says/,
  },
  {
    name: 'a confirmed restore moves to Verifying',
    phase: 'Restoring',
    facts: facts({ restore: done({ restoredAt: NOW, restoreMs: 100 }) }),
    next: 'Verifying',
    actions: [],
  },
  {
    name: 'Verifying checks the target',
    phase: 'Verifying',
    facts: facts({}),
    next: 'Verifying',
    actions: [['verifyTarget', 'node2']],
  },
  {
    name: 'a restored workload that died rolls back',
    phase: 'Verifying',
    facts: facts({ verifyTarget: failed('CriuRestoreFailed: gone') }),
    next: 'RollingBack',
    actions: [],
  },
  {
    name: 'a verified target moves to CleaningUp',
    phase: 'Verifying',
    facts: facts({ verifyTarget: done() }),
    next: 'CleaningUp',
    actions: [],
  },
  {
    name: 'CleaningUp removes the source only now',
    phase: 'CleaningUp',
    facts: facts({}),
    next: 'CleaningUp',
    actions: [
      ['cleanupSource', 'node1'],
      ['cleanupTarget', 'node2'],
    ],
  },
  {
    name: 'clean-up done means Succeeded',
    phase: 'CleaningUp',
    facts: facts({ cleanupSource: done(), cleanupTarget: done() }),
    next: 'Succeeded',
    actions: [],
  },
  {
    name: 'a failed clean-up still succeeds, with a warning',
    phase: 'CleaningUp',
    facts: facts({ cleanupSource: failed('SnapshotFailed: busy'), cleanupTarget: done() }),
    next: 'Succeeded',
    actions: [],
  },
  // Rollback.
  {
    name: 'RollingBack cleans the target and resumes the source',
    phase: 'RollingBack',
    facts: facts({}),
    next: 'RollingBack',
    actions: [
      ['rollbackTarget', 'node2'],
      ['resumeSource', 'node1'],
    ],
  },
  {
    name: 'a finished rollback fails the migration, keeping the first reason',
    phase: 'RollingBack',
    extra: { failureReason: 'restore on node2 failed: CriuRestoreFailed: x' },
    facts: facts({ rollbackTarget: done(), resumeSource: done() }),
    next: 'Failed',
    actions: [],
    reason: /^restore on node2 failed: CriuRestoreFailed: x$/,
  },
  {
    name: 'a source that cannot resume is named in the failure',
    phase: 'RollingBack',
    extra: { failureReason: 'restore on node2 failed: x' },
    facts: facts({
      rollbackTarget: done(),
      resumeSource: failed('SourceResumeFailed: source container web is stopped'),
    }),
    next: 'Failed',
    actions: [],
    reason: /rollback incomplete: resumeSource on node1 failed: SourceResumeFailed/,
  },
  // Abort, deletion and timeouts: guards before the phase switch.
  {
    name: 'abort in Pending fails at once',
    phase: 'Pending',
    spec: { abort: true },
    facts: facts({}),
    next: 'Failed',
    actions: [],
    reason: /Aborted: spec.abort/,
  },
  {
    name: 'abort in Preflight withdraws the waiting checks',
    phase: 'Preflight',
    spec: { abort: true },
    facts: facts({ preflightSource: { state: 'waiting' }, preflightTarget: done() }),
    next: 'Failed',
    actions: [['preflightSource', 'node1']],
    reason: /Aborted/,
  },
  {
    name: 'abort waits while the dump runs (next safe point)',
    phase: 'Checkpointing',
    spec: { abort: true },
    facts: facts({ checkpoint: active }),
    next: 'Checkpointing',
    actions: [],
  },
  {
    name: 'abort after the dump rolls back',
    phase: 'Transferring',
    spec: { abort: true },
    facts: facts({ transfer: done() }),
    next: 'RollingBack',
    actions: [],
    reason: /Aborted: spec.abort was set/,
  },
  {
    name: 'deleting a running migration rolls it back',
    phase: 'Syncing',
    meta: { deletionTimestamp: NOW },
    facts: facts({}),
    next: 'RollingBack',
    actions: [],
    reason: /Aborted: the Migration is being deleted/,
  },
  {
    name: 'abort is too late in CleaningUp: the migration completes',
    phase: 'CleaningUp',
    spec: { abort: true },
    facts: facts({ cleanupSource: done(), cleanupTarget: done() }),
    next: 'CleaningUp',
    actions: [],
  },
  {
    name: 'a deleted, ended migration is released',
    phase: 'Failed',
    meta: { deletionTimestamp: NOW },
    facts: facts({}),
    next: 'Failed',
    actions: [['release']],
  },
  {
    name: 'a step nobody picks up times out: withdrawn, then rolled back',
    phase: 'Transferring',
    facts: { ...LATE, jobs: { transfer: { state: 'waiting' } } },
    next: 'RollingBack',
    actions: [['transfer', 'node1']],
    reason: /ProgressTimeout: Transferring made no progress for 150s/,
  },
  {
    name: 'a running restore is never timed out under its feet',
    phase: 'Restoring',
    facts: { ...LATE, jobs: { restore: active } },
    next: 'Restoring',
    actions: [],
  },
  {
    name: 'RollingBack never times out: the source must come back',
    phase: 'RollingBack',
    facts: { ...LATE, jobs: { rollbackTarget: active } },
    next: 'RollingBack',
    actions: [['resumeSource', 'node1']],
  },
  {
    name: 'Succeeded is never left',
    phase: 'Succeeded',
    facts: facts({ restore: failed('Internal: x') }),
    next: 'Succeeded',
    actions: [],
  },
  { name: 'Failed is never left', phase: 'Failed', facts: facts({}), next: 'Failed', actions: [] },
];

for (const row of table) {
  test(row.name, () => {
    const d = decide(migration(row.phase, row.extra, row.spec, row.meta), row.facts);
    assert.equal(d.status.phase, row.next);
    assert.deepEqual(steps(d.actions), row.actions);
    for (const a of d.actions)
      if ('jobId' in a) assert.equal(a.jobId, keyspace.jobId('abcdef12-0000', a.step));
    if (row.reason) assert.match(d.status.failureReason ?? '', row.reason);
    if (row.target) assert.equal(d.status.migrationState?.targetNode, row.target);
    if (row.next !== row.phase)
      assert.deepEqual(d.status.phaseTransitionTimestamps.at(-1), { phase: row.next, time: row.facts.now });
    else assert.equal(d.status.phaseTransitionTimestamps.length, 1);
  });
}

test('downtime is measured from the freeze to the target running', () => {
  const m = migration('Restoring', {
    migrationState: { sourceNode: 'node1', targetNode: 'node2', frozenAt: '2026-01-01T00:00:01.000Z' },
  });
  const d = decide(m, facts({ restore: done({ restoredAt: '2026-01-01T00:00:01.750Z', restoreMs: 300 }) }));
  assert.equal(d.status.migrationState?.downtimeMs, 750);
  assert.equal(d.status.migrationState?.restoreMs, 300);
});

test('throughput is computed from the transfer’s bytes and time', () => {
  const d = decide(
    migration('Transferring'),
    facts({ transfer: done({ bytes: 2_000_000, durationMs: 500, files: 9 }) }),
  );
  assert.equal(d.status.migrationState?.throughputBytesPerSecond, 4_000_000);
  assert.equal(d.status.migrationState?.bytesDuringFreeze, 2_000_000);
});

test('with a streamed dump, the freeze’s throughput counts the streamed bytes and the dump’s time', () => {
  const state = { sourceNode: 'node1', targetNode: 'node2', bytesDuringFreeze: 8_000_000, dumpMs: 1500 };
  const d = decide(
    migration('Transferring', { migrationState: state }),
    facts({ transfer: done({ bytes: 2_000_000, durationMs: 500, files: 9 }) }),
  );
  assert.equal(d.status.migrationState?.bytesDuringFreeze, 10_000_000);
  assert.equal(d.status.migrationState?.throughputBytesPerSecond, 5_000_000);
});

test('the transfer job names the target node, never an address, and each volume with its driver', () => {
  const volumes = [
    { name: 'rootfs', driver: 'overlay' as const },
    { name: 'data', driver: 'btrfs' as const },
  ];
  const m = migration('Transferring', {
    migrationState: { sourceNode: 'node1', targetNode: 'node2', volumes },
  });
  const d = decide(m, facts({}));
  assert.deepEqual(d.actions[0], {
    type: 'enqueue',
    step: 'transfer',
    node: 'node1',
    jobId: 'abcdef12-0000.transfer',
    job: {
      kind: 'transfer',
      migration: { uid: 'abcdef12-0000', name: 'm1', workload: 'container' },
      container: 'web',
      volumes,
      targetNode: 'node2',
      compression: 'Auto',
      // A frozen step's deadline: nothing estimated here, so the floor (10 s).
      deadlineMs: 10_000,
    },
  });
});

test('a frozen step’s deadline is four times the estimated freeze, at most progressTimeout', () => {
  const state = {
    sourceNode: 'node1',
    targetNode: 'node2',
    mode: 'StopAndCopy' as const,
    estimatedFreezeMs: 8000,
  };
  const job = (phase: Phase, spec = {}) => {
    const a = decide(migration(phase, { migrationState: state }, spec), facts({})).actions[0];
    return a?.type === 'enqueue' && 'deadlineMs' in a.job ? a.job.deadlineMs : undefined;
  };
  assert.equal(job('Checkpointing'), 32_000);
  assert.equal(job('Restoring'), 32_000);
  assert.equal(job('Transferring', { timeouts: { progressTimeout: '20s' } }), 20_000);
});

test('the volumes and drivers the source found in preflight are what later steps act on', () => {
  const src = { ...FEATURES, status: 'running', volumes: [{ name: 'rootfs', driver: 'btrfs' }] };
  const d = decide(migration('Preflight'), facts({ preflightSource: done(src), preflightTarget: done() }));
  assert.equal(d.status.phase, 'Syncing');
  assert.deepEqual(d.status.migrationState?.volumes, [{ name: 'rootfs', driver: 'btrfs' }]);
});

test('a process tree names its kind and PID in every job', () => {
  const d = decide(
    migration('Restoring', {}, { source: { node: 'node1', container: 'tree', pid: 4242 } }),
    facts({}),
  );
  const job = (d.actions[0] as { job: { migration: unknown } }).job;
  assert.deepEqual(job.migration, { uid: 'abcdef12-0000', name: 'm1', workload: 'process', pid: 4242 });
});

test('the target’s preflight is enqueued with what the source’s found', () => {
  const src = {
    ...FEATURES,
    status: 'running',
    memoryBytes: 64 << 20,
    rootfsBytes: 3 << 20,
    cpuinfo: 'Y3B1',
  };
  const d = decide(migration('Preflight'), facts({ preflightSource: done(src) }));
  assert.deepEqual(steps(d.actions), [['preflightTarget', 'node2']]);
  assert.deepEqual((d.actions[0] as { job: unknown }).job, {
    kind: 'preflightTarget',
    migration: { uid: 'abcdef12-0000', name: 'm1', workload: 'container' },
    container: 'web',
    requirements: { cpuinfo: 'Y3B1', memoryBytes: 64 << 20, rootfsBytes: 3 << 20 },
  });
});

test('a selector picks the matching node with the fewest inbound migrations', () => {
  const live = new Map([
    ['node1', { labels: { zone: 'a' } }],
    ['node2', { labels: { zone: 'b' } }],
    ['node3', { labels: { zone: 'b' } }],
  ]);
  const m = migration(
    'Pending',
    { migrationState: { sourceNode: 'node1' } },
    { target: { nodeSelector: { zone: 'b' } } },
  );
  const d = decide(m, facts({}, live, { running: 1, outbound: {}, inbound: { node2: 1 } }));
  assert.equal(d.status.phase, 'Preflight');
  assert.equal(d.status.migrationState?.targetNode, 'node3');
});

test('a queued migration says why in its Admitted condition', () => {
  const d = decide(migration('Pending'), facts({}, BOTH, { running: 5, outbound: {}, inbound: {} }));
  const admitted = d.status.conditions?.find((c) => c.type === 'Admitted');
  assert.equal(admitted?.status, 'False');
  assert.equal(admitted?.reason, 'ConcurrencyLimit');
  assert.match(admitted?.message ?? '', /5 migrations are running in the cluster \(limit 5\)/);
  assert.equal(admitted?.observedGeneration, 1);
});

test('Auto records the mode it chose, the link rate it measured, and why', () => {
  const d = decide(
    migration('Preflight'),
    facts({
      preflightSource: done({ ...FEATURES, memoryBytes: 64 * 2 ** 20, linkBytesPerSecond: 256 * 2 ** 20 }),
      preflightTarget: done(),
    }),
  );
  assert.equal(d.status.migrationState?.mode, 'StopAndCopy');
  assert.equal(d.status.migrationState?.linkBytesPerSecond, 256 * 2 ** 20);
  assert.match(
    d.status.migrationState?.modeReason ?? '',
    /^chosen by Auto: 64 MiB over a 256 MiB\/s link: StopAndCopy would freeze about \d+ ms, maxDowntime 2s/,
  );
});

test('the checkpoint job carries the chosen mode and target; a PostCopy restore carries the page port', () => {
  const state = { sourceNode: 'node1', targetNode: 'node2', mode: 'PostCopy' as const, lazyPagesPort: 40001 };
  const ck = decide(migration('Checkpointing', { migrationState: state }), facts({}));
  const job = ck.actions.find((a) => a.type === 'enqueue');
  assert.ok(job && job.type === 'enqueue');
  assert.deepEqual([job.job.kind, 'mode' in job.job && job.job.mode], ['checkpoint', 'PostCopy']);
  const rs = decide(migration('Restoring', { migrationState: state }), facts({}));
  const restore = rs.actions.find((a) => a.type === 'enqueue');
  assert.ok(restore && restore.type === 'enqueue' && restore.job.kind === 'restore');
  assert.deepEqual(restore.job.lazy, { sourceNode: 'node1', port: 40001 });
});

test('an abort after the freeze ends Failed with abortStatus Succeeded once the source runs again', () => {
  const m = migration(
    'RollingBack',
    {
      failureReason: 'Aborted: spec.abort was set',
      migrationState: {
        sourceNode: 'node1',
        targetNode: 'node2',
        abortRequested: true,
        abortStatus: 'Aborting',
      },
    },
    { abort: true },
  );
  const d = decide(m, facts({ rollbackTarget: done(), resumeSource: done() }));
  assert.equal(d.status.phase, 'Failed');
  assert.equal(d.status.migrationState?.abortStatus, 'Succeeded');
  assert.equal(d.status.conditions?.find((c) => c.type === 'AbortRequested')?.status, 'True');
});

test('lastTransitionTime moves only when a condition flips', () => {
  const first = decide(migration('Syncing'), facts({}));
  const progressing = first.status.conditions?.find((c) => c.type === 'Progressing');
  const m = migration('Syncing', first.status);
  const again = decide(m, { ...facts({}), now: '2026-01-01T00:00:09.000Z' });
  assert.equal(
    again.status.conditions?.find((c) => c.type === 'Progressing')?.lastTransitionTime,
    progressing?.lastTransitionTime,
  );
});

test('spec.strategy.bandwidth reaches the sending agent in bytes per second', () => {
  const m = migration('Transferring', {}, { strategy: { bandwidth: '20Mi' } });
  const d = decide(m, facts({}));
  assert.equal((d.actions[0] as { job: { bandwidth?: number } }).job.bandwidth, 20 * 2 ** 20);
});

test('each volume is listed with its driver and the bytes sent before and during the freeze', () => {
  const vol = (bytes: number) => ({ volumes: [{ name: 'rootfs', driver: 'btrfs', bytes }] });
  const synced = decide(
    migration('Syncing'),
    facts({ sync: done({ bytes: 5000, durationMs: 10, files: 1, ...vol(5000) }) }),
  );
  const m = migration('Transferring', { migrationState: synced.status.migrationState! });
  const d = decide(m, facts({ transfer: done({ bytes: 900, durationMs: 10, files: 3, ...vol(300) }) }));
  assert.deepEqual(d.status.migrationState?.volumes, [
    { name: 'rootfs', driver: 'btrfs', bytesBeforeFreeze: 5000, bytesDuringFreeze: 300 },
  ]);
});

test('a target that goes silent before the hand-over fails the step at once', () => {
  // Transferring: the source sends; a silent target has restored nothing and never will.
  const m = migration('Preflight', {}, {});
  const d = decide(
    m,
    facts({ preflightSource: done(FEATURES), preflightTarget: { state: 'waiting' } }, nodes('node1')),
  );
  assert.equal(d.status.phase, 'Failed');
  assert.match(d.status.failureReason!, /preflightTarget on node2 failed: NodeNotFound: node node2 is gone/);
  assert.deepEqual(steps(d.actions), [['preflightTarget', 'node2']]); // the waiting job is withdrawn
});

test('a target that goes silent after the hand-over is waited for, never acted around', () => {
  const m = migration('Restoring', {
    migrationState: { sourceNode: 'node1', targetNode: 'node2', handedOver: true },
  });
  for (const restore of [{ state: 'waiting' as const }, active]) {
    const d = decide(m, facts({ restore }, nodes('node1')));
    assert.equal(d.status.phase, 'Restoring', 'a paused target may still restore: no rollback on a silence');
    assert.deepEqual(d.actions, [], 'its job is not withdrawn either: it may be running it');
    assert.match(
      d.status.warnings!.at(-1)!,
      /node node2 went silent during Restoring.*ferry node fence node2/,
    );
  }
  const verifying = migration('Verifying', {});
  assert.equal(decide(verifying, facts({ verifyTarget: active }, nodes('node1'))).status.phase, 'Verifying');
  // While the node is there, a running step is never raced.
  assert.equal(decide(m, facts({ restore: active })).status.phase, 'Restoring');
});

test('a fenced target is acted around: the rollback skips it and releases the source', () => {
  const state = { sourceNode: 'node1', targetNode: 'node2', handedOver: true };
  const fenced = (jobs: Parameters<typeof facts>[0]) => ({
    ...facts(jobs, nodes('node1')),
    fenced: new Set(['node2']),
  });
  const m = migration('Restoring', { migrationState: state });
  const d = decide(m, fenced({ restore: active }));
  assert.equal(d.status.phase, 'RollingBack');
  assert.match(d.status.failureReason!, /restore on node2 failed: NodeNotFound: node node2 is fenced/);
  const rb = migration('RollingBack', { migrationState: state });
  const d1 = decide(rb, fenced({}));
  assert.deepEqual(steps(d1.actions), [['resumeSource', 'node1']]);
  const job = d1.actions[0]!.type === 'enqueue' ? d1.actions[0]!.job : undefined;
  assert.equal(job && 'release' in job ? job.release : undefined, 'targetFenced');
});

test('handed over, a rollback removes the target copy first and the source resumes on its word', () => {
  const rb = migration('RollingBack', {
    migrationState: { sourceNode: 'node1', targetNode: 'node2', handedOver: true },
  });
  assert.deepEqual(steps(decide(rb, facts({})).actions), [['rollbackTarget', 'node2']]);
  const d = decide(rb, facts({ rollbackTarget: done({}) }));
  assert.deepEqual(steps(d.actions), [['resumeSource', 'node1']]);
  const job = d.actions[0]!.type === 'enqueue' ? d.actions[0]!.job : undefined;
  assert.equal(job && 'release' in job ? job.release : undefined, 'targetRemoved');
  // A silent target is waited for: the source is never resumed while it may run the workload.
  const silent = decide(rb, facts({}, nodes('node1')));
  assert.deepEqual(silent.actions, []);
  assert.equal(silent.status.phase, 'RollingBack');
});

test('a source that goes silent while rolling back is waited for; fenced, its copy is lost with it', () => {
  const rb = migration('RollingBack', { failureReason: 'checkpoint on node1 failed: NodeNotFound' });
  const d = decide(rb, facts({ rollbackTarget: done({}) }, nodes('node2')));
  assert.equal(d.status.phase, 'RollingBack');
  assert.match(d.status.warnings!.at(-1)!, /node node1 went silent during RollingBack/);
  const f = decide(rb, {
    ...facts({ rollbackTarget: done({}) }, nodes('node2')),
    fenced: new Set(['node1']),
  });
  assert.equal(f.status.phase, 'Failed');
  assert.match(
    f.status.failureReason!,
    /rollback incomplete: resumeSource on node1 failed: NodeNotFound: node node1 is fenced/,
  );
});

test('the transfer completed marks the hand-over, kept through a rollback', () => {
  const m = migration('Transferring', {});
  const d = decide(
    m,
    facts({ transfer: done({ bytes: 1, durationMs: 1, files: 1, resumedBytes: 0, volumes: [] }) }),
  );
  assert.equal(d.status.phase, 'Restoring');
  assert.equal(d.status.migrationState?.handedOver, true);
  const timedOut = decide(m, {
    ...facts({ transfer: done({ bytes: 1, durationMs: 1, files: 1, resumedBytes: 0, volumes: [] }) }),
    now: LATE.now,
  });
  assert.equal(timedOut.status.phase, 'RollingBack');
  assert.equal(timedOut.status.migrationState?.handedOver, true);
});

test('a rollback whose target is gone skips the target and resumes the source', () => {
  const m = migration('RollingBack', { failureReason: 'restore on node2 failed: NodeNotFound' });
  const d1 = decide(m, facts({}, nodes('node1')));
  assert.deepEqual(steps(d1.actions), [['resumeSource', 'node1']]);
  const d2 = decide(m, facts({ resumeSource: done() }, nodes('node1')));
  assert.equal(d2.status.phase, 'Failed');
  assert.match(d2.status.warnings![0]!, /rollbackTarget skipped: node node2 is gone/);
  // A bare process tree too: its target copy died with the node, so its PIDs are free.
  const bare = migration('RollingBack', {}, { source: { node: 'node1', container: 'p', pid: 42 } });
  assert.deepEqual(steps(decide(bare, facts({}, nodes('node1'))).actions), [['resumeSource', 'node1']]);
});

test('a rollback that thawed a frozen source records the freeze it suffered', () => {
  const m = migration('RollingBack', {
    migrationState: { sourceNode: 'node1', targetNode: 'node2', frozenAt: '2026-01-01T00:00:01.000Z' },
  });
  const jobs = {
    rollbackTarget: done({ removedContainer: true }),
    resumeSource: done({ resumed: 'web', wasFrozen: true, resumedAt: '2026-01-01T00:00:04.500Z' }),
  };
  const d = decide(m, facts(jobs));
  assert.equal(d.status.phase, 'Failed');
  assert.equal(d.status.migrationState?.downtimeMs, 3500);
  assert.equal(d.status.migrationState?.resumedAt, '2026-01-01T00:00:04.500Z');
});

test('timeouts follow the controller’s monotonic measure, not a wall clock that jumped', () => {
  const m = migration('Syncing', {});
  // The wall clock says an hour passed; the controller measured 2 s in the phase: no timeout.
  const jumped = {
    ...facts({ sync: active }),
    now: LATE.now,
    elapsed: { phaseMs: 2000, sincePreflightMs: 3000 },
  };
  assert.equal(decide(m, jumped).status.phase, 'Syncing');
  // And the other way: the wall clock stepped back, the controller measured past progressTimeout.
  const stuck = { ...facts({}), elapsed: { phaseMs: 200_000, sincePreflightMs: 200_000 } };
  const d = decide(m, stuck);
  assert.equal(d.status.phase, 'RollingBack');
  assert.match(d.status.failureReason!, /^ProgressTimeout: Syncing made no progress for 150s/);
});
