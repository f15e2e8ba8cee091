import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Phase, StoredMigration } from '../api/v1alpha1/migration.ts';
import { decide, initialStatus, jobIdFor, type Facts, type JobFact, type StepName } from './reconcile.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const NOW = '2026-01-01T00:00:05.000Z';
const BOTH = new Set(['node1', 'node2']);

function migration(phase: Phase, extra: Partial<StoredMigration['status']> = {}): StoredMigration {
  return {
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Migration',
    metadata: { name: 'm1', namespace: 'default', uid: 'abcdef12-0000', creationTimestamp: T0 },
    spec: { source: { node: 'node1', container: 'web' }, target: { node: 'node2' } },
    status: {
      ...initialStatus(T0),
      phase,
      migrationState: { sourceNode: 'node1', targetNode: 'node2' },
      ...extra,
    },
  };
}

const done = (result: unknown = {}): JobFact => ({ state: 'completed', result });
const failed = (reason: string): JobFact => ({ state: 'failed', failedReason: reason });
const active: JobFact = { state: 'active' };
const facts = (jobs: Partial<Record<StepName, JobFact>>, nodes = BOTH): Facts => ({ now: NOW, nodes, jobs });

interface Row {
  name: string;
  phase: Phase;
  facts: Facts;
  extra?: Partial<StoredMigration['status']>;
  next: Phase;
  enqueue: Array<[StepName, string]>;
  reason?: RegExp;
}

const table: Row[] = [
  {
    name: 'Pending with both nodes alive moves to Preflight',
    phase: 'Pending',
    facts: facts({}),
    next: 'Preflight',
    enqueue: [],
  },
  {
    name: 'Pending with the target node missing fails before anything runs',
    phase: 'Pending',
    facts: facts({}, new Set(['node1'])),
    next: 'Failed',
    enqueue: [],
    reason: /NodeNotFound: target node node2/,
  },
  {
    name: 'Preflight enqueues both checks',
    phase: 'Preflight',
    facts: facts({}),
    next: 'Preflight',
    enqueue: [
      ['preflightSource', 'node1'],
      ['preflightTarget', 'node2'],
    ],
  },
  {
    name: 'Preflight waits while one check runs',
    phase: 'Preflight',
    facts: facts({ preflightSource: done(), preflightTarget: active }),
    next: 'Preflight',
    enqueue: [],
  },
  {
    name: 'a missing container fails in Preflight, with nothing frozen',
    phase: 'Preflight',
    facts: facts({
      preflightSource: failed('ContainerNotFound: container web on node1 is absent'),
      preflightTarget: done(),
    }),
    next: 'Failed',
    enqueue: [],
    reason: /preflightSource on node1 failed: ContainerNotFound/,
  },
  {
    name: 'Preflight passes into Syncing',
    phase: 'Preflight',
    facts: facts({ preflightSource: done(), preflightTarget: done() }),
    next: 'Syncing',
    enqueue: [],
  },
  {
    name: 'Syncing enqueues the live filesystem send',
    phase: 'Syncing',
    facts: facts({}),
    next: 'Syncing',
    enqueue: [['sync', 'node1']],
  },
  {
    name: 'Syncing done moves to Checkpointing',
    phase: 'Syncing',
    facts: facts({ sync: done({ bytes: 100 }) }),
    next: 'Checkpointing',
    enqueue: [],
  },
  {
    name: 'a failed sync rolls back',
    phase: 'Syncing',
    facts: facts({ sync: failed('TransferFailed: reset') }),
    next: 'RollingBack',
    enqueue: [],
    reason: /sync on node1 failed/,
  },
  {
    name: 'Checkpointing enqueues the dump on the source',
    phase: 'Checkpointing',
    facts: facts({}),
    next: 'Checkpointing',
    enqueue: [['checkpoint', 'node1']],
  },
  {
    name: 'a failed dump rolls back so the frozen source resumes',
    phase: 'Checkpointing',
    facts: facts({ checkpoint: failed('CriuDumpFailed: CRIU says: Error (x): y') }),
    next: 'RollingBack',
    enqueue: [],
    reason: /CriuDumpFailed/,
  },
  {
    name: 'Checkpointing done moves to Transferring',
    phase: 'Checkpointing',
    facts: facts({ checkpoint: done({ frozenAt: NOW, dumpMs: 200 }) }),
    next: 'Transferring',
    enqueue: [],
  },
  {
    name: 'Transferring waits on an active transfer',
    phase: 'Transferring',
    facts: facts({ transfer: active }),
    next: 'Transferring',
    enqueue: [],
  },
  {
    name: 'a failed transfer rolls back',
    phase: 'Transferring',
    facts: facts({ transfer: failed('IntegrityError: sha256 mismatch') }),
    next: 'RollingBack',
    enqueue: [],
    reason: /transfer on node1 failed: IntegrityError/,
  },
  {
    name: 'Restoring enqueues the restore on the target',
    phase: 'Restoring',
    facts: facts({}),
    next: 'Restoring',
    enqueue: [['restore', 'node2']],
  },
  {
    name: 'a failed restore rolls back with CRIU’s reason',
    phase: 'Restoring',
    facts: facts({ restore: failed('CriuRestoreFailed: CRIU says: Error (criu/pstree.c:1): bad image') }),
    next: 'RollingBack',
    enqueue: [],
    reason: /restore on node2 failed: CriuRestoreFailed: CRIU says/,
  },
  {
    name: 'a confirmed restore moves to CleaningUp',
    phase: 'Restoring',
    facts: facts({ restore: done({ restoredAt: NOW, restoreMs: 100 }) }),
    next: 'CleaningUp',
    enqueue: [],
  },
  {
    name: 'CleaningUp removes the source only now that the target runs',
    phase: 'CleaningUp',
    facts: facts({}),
    next: 'CleaningUp',
    enqueue: [
      ['cleanupSource', 'node1'],
      ['cleanupTarget', 'node2'],
    ],
  },
  {
    name: 'clean-up done means Succeeded',
    phase: 'CleaningUp',
    facts: facts({ cleanupSource: done(), cleanupTarget: done() }),
    next: 'Succeeded',
    enqueue: [],
  },
  {
    name: 'a failed clean-up still succeeds, with a warning',
    phase: 'CleaningUp',
    facts: facts({ cleanupSource: failed('SnapshotFailed: busy'), cleanupTarget: done() }),
    next: 'Succeeded',
    enqueue: [],
  },
  {
    name: 'RollingBack cleans the target and resumes the source',
    phase: 'RollingBack',
    facts: facts({}),
    next: 'RollingBack',
    enqueue: [
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
    enqueue: [],
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
    enqueue: [],
    reason: /rollback incomplete: resumeSource on node1 failed: SourceResumeFailed/,
  },
  {
    name: 'Succeeded is never left',
    phase: 'Succeeded',
    facts: facts({ restore: failed('x') }),
    next: 'Succeeded',
    enqueue: [],
  },
  { name: 'Failed is never left', phase: 'Failed', facts: facts({}), next: 'Failed', enqueue: [] },
];

for (const row of table) {
  test(row.name, () => {
    const d = decide(migration(row.phase, row.extra), row.facts);
    assert.equal(d.status.phase, row.next);
    assert.deepEqual(
      d.actions.map((a) => [a.step, a.node]),
      row.enqueue,
    );
    for (const a of d.actions) assert.equal(a.jobId, jobIdFor('abcdef12-0000', a.step));
    if (row.reason) assert.match(d.status.failureReason ?? '', row.reason);
    if (row.next !== row.phase)
      assert.deepEqual(d.status.phaseTransitionTimestamps.at(-1), { phase: row.next, time: NOW });
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

test('the transfer job names the target node, never an address', () => {
  const d = decide(migration('Transferring'), facts({}));
  assert.deepEqual(d.actions[0]?.job, {
    kind: 'transfer',
    migration: { uid: 'abcdef12-0000', name: 'm1' },
    container: 'web',
    targetNode: 'node2',
  });
});
