import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { Bus } from '../lib/bus.ts';
import type { MigrationStore } from '../lib/store/migration-store.ts';
import { storedMigration, T0 } from '../test/fixtures/migrations.ts';
import { agentsUp, ControllerMetrics, inFlight } from './metrics.ts';

const info = (node: string, criuProblem?: string) =>
  ({
    node,
    address: '10.0.0.1',
    sshPort: 22,
    criuVersion: '4.2',
    ...(criuProblem ? { criuProblem } : {}),
  }) as never;

describe('controller metrics', () => {
  it('show a migration under way by its phase and, while a step sends, the bytes sent and left', () => {
    const sending = storedMigration('Transferring', {
      progress: { step: 'transfer', bytes: 300, totalBytes: 1000, updatedAt: T0 },
    });
    assert.deepEqual(inFlight(sending), {
      namespace: 'default',
      name: 'm1',
      phase: 'Transferring',
      step: 'transfer',
      processed: 300,
      remaining: 700,
    });
    assert.deepEqual(inFlight(storedMigration('Restoring')), {
      namespace: 'default',
      name: 'm1',
      phase: 'Restoring',
    });
    assert.equal(inFlight(storedMigration('Succeeded')), undefined, 'ended: no series');
  });

  it('report an agent whose heartbeat stopped as down, not absent', () => {
    const live = new Map([
      ['node1', info('node1')],
      ['node3', info('node3', 'no CRIU')],
    ]);
    const seen = new Map([
      ['node1', 1],
      ['node2', 1],
      ['node3', 1],
    ]);
    assert.deepEqual(agentsUp(live, seen), [
      { node: 'node1', criuOk: 'true', up: 1 },
      { node: 'node2', criuOk: 'unknown', up: 0 },
      { node: 'node3', criuOk: 'false', up: 1 },
    ]);
  });

  it('serve no shared-state gauge from a follower, so sums over replicas count each thing once', async () => {
    let listed = 0;
    const store = {
      list: async () => {
        listed++;
        return [storedMigration('Transferring')];
      },
    } as unknown as MigrationStore;
    let leader = false;
    const metrics = new ControllerMetrics({
      store,
      bus: {} as Bus,
      redis: {} as Redis,
      cluster: 'c',
      isLeader: () => leader,
    });
    const text = await metrics.registry.metrics();
    assert.match(text, /^ferry_controller_leader 0$/m);
    for (const g of ['ferry_migrations', 'ferry_migration_phase', 'ferry_agent_up', 'ferry_queue_jobs'])
      assert.doesNotMatch(text, new RegExp(`^${g}\\{`, 'm'), `${g} has no series on a follower`);
    assert.equal(listed, 0, 'a follower does not even read the store');
    assert.match(text, /^ferry_controller_process_resident_memory_bytes \d+/m, 'its own process metrics');
    leader = true;
    const led = await metrics.registry.metrics().catch((err: Error) => err.message);
    // As leader it reads the store (the node registry needs Redis, absent here).
    assert.ok(listed > 0, led);
  });
});
