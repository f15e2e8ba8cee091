import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredMigration } from '../../api/v1alpha1/migration.ts';
import { createLogger } from '../../lib/logger.ts';
import type { MigrationStore } from '../../lib/store/migration-store.ts';
import { world, type Failing } from '../../test/fixtures/pods.ts';
import { PodRunner } from './pod-runner.ts';
import { replacementPod } from './pod-spec.ts';

const log = createLogger('test', '/dev/null');

function migration(phase: StoredMigration['status']['phase'], abort = false): StoredMigration {
  return {
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Migration',
    metadata: {
      name: 'move-db',
      namespace: 'shop',
      uid: 'abcdef12-3456',
      creationTimestamp: '2026-11-27T10:00:00Z',
      generation: 1,
    },
    spec: { source: { node: 'node1', container: 'db', pod: 'db' }, target: { node: 'node2' }, abort },
    status: {
      phase,
      phaseTransitionTimestamps: [
        { phase: 'Pending', time: '2026-11-27T10:00:00Z' },
        { phase, time: '2026-11-27T10:00:01Z' },
      ],
      migrationState: { sourceNode: 'node1', targetNode: 'node2' },
    },
  } as unknown as StoredMigration;
}

/** A store holding one Migration, enough for the runner: get and updateStatus. */
function storeOf(m: StoredMigration) {
  let cur = m;
  const store = {
    get: async () => structuredClone(cur),
    updateStatus: async (_ns: string, _name: string, status: StoredMigration['status']) => {
      cur = { ...cur, status };
      return true;
    },
  } as unknown as MigrationStore;
  return { store, now: () => cur, abort: () => (cur = { ...cur, spec: { ...cur.spec, abort: true } }) };
}

async function runOnce(
  m: StoredMigration,
  fail: Failing,
  opts: { leader?: () => boolean; before?: (w: ReturnType<typeof world>) => void } = {},
) {
  const w = world(fail);
  opts.before?.(w);
  const s = storeOf(m);
  const runner = new PodRunner({
    store: s.store,
    pods: w.ports.pods,
    agents: () => w.ports.agents,
    log,
    isLeader: opts.leader ?? (() => true),
  });
  runner.reconcile(m);
  await runner.idle();
  return { w, m: s.now() };
}

const phases = (m: StoredMigration) => m.status.phaseTransitionTimestamps.map((t) => t.phase);

describe('the pod runner', () => {
  it('runs an admitted pod Migration and writes each phase', async () => {
    const { m, w } = await runOnce(migration('Preflight'), undefined);
    assert.deepEqual(phases(m), [
      'Pending',
      'Preflight',
      'Checkpointing',
      'Transferring',
      'Restoring',
      'Verifying',
      'CleaningUp',
      'Succeeded',
    ]);
    assert.equal(m.status.migrationState?.targetPod, 'db-abcde');
    assert.equal(m.status.migrationState?.bytesDuringFreeze, 20);
    assert.deepEqual([...w.pods.keys()], ['shop/db-abcde']);
  });

  it('fails with the phase and the cause, after rolling back', async () => {
    const { m, w } = await runOnce(migration('Preflight'), 'importImages');
    assert.deepEqual(phases(m).slice(-2), ['RollingBack', 'Failed']);
    assert.equal(m.status.failureReason, 'Restoring: importImages broke');
    assert.equal(w.frozen.size, 0);
  });

  it('stops on an abort while undoing is still the way out', async () => {
    const w0 = storeOf(migration('Preflight', true));
    const w = world(undefined);
    const runner = new PodRunner({
      store: w0.store,
      pods: w.ports.pods,
      agents: () => w.ports.agents,
      log,
      isLeader: () => true,
    });
    runner.reconcile(migration('Preflight', true));
    await runner.idle();
    assert.equal(w0.now().status.phase, 'Failed');
    assert.match(w0.now().status.failureReason ?? '', /aborted/);
    assert.deepEqual([...w.pods.keys()], ['shop/db']);
    assert.equal(w.frozen.size, 0);
  });

  it('leaves a run to the new leader when leadership is lost, writing nothing final', async () => {
    let calls = 0;
    const { m, w } = await runOnce(migration('Preflight'), undefined, { leader: () => ++calls < 2 });
    assert.notEqual(m.status.phase, 'Failed');
    assert.notEqual(m.status.phase, 'Succeeded');
    assert.ok(w.frozen.size > 0, 'the source stays frozen for the new leader to resolve');
  });

  it('recovers a run cut short: a replacement that runs is kept and the migration completes', async () => {
    const { m, w } = await runOnce(migration('Verifying'), undefined, {
      before: (w) => {
        const r = replacementPod(w.pods.get('shop/db')!, {
          targetNode: 'node2',
          images: { db: 'i', exporter: 'j' },
          migration: 'move-db',
          migrationUid: 'abcdef12-3456',
        });
        w.pods.set('shop/db-abcde', { ...r, status: w.pods.get('shop/db')!.status! });
      },
    });
    assert.equal(m.status.phase, 'Succeeded');
    assert.match(
      m.status.warnings![0]!,
      /controller stopped during Verifying; the replacement pod was running/,
    );
    assert.deepEqual([...w.pods.keys()], ['shop/db-abcde']);
  });

  it('recovers a run cut short before the replacement ran: undone, source thawed, Failed', async () => {
    const { m, w } = await runOnce(migration('Transferring'), undefined, {
      before: (w) => w.frozen.add('a'.repeat(64)),
    });
    assert.deepEqual(phases(m).slice(-2), ['RollingBack', 'Failed']);
    assert.match(m.status.failureReason!, /controller stopped during Transferring/);
    assert.deepEqual([...w.pods.keys()], ['shop/db']);
    assert.equal(w.frozen.size, 0);
    assert.equal(w.log.at(-1), 'thaw node1');
  });
});
