import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredMigration } from '../../api/v1alpha1/migration.ts';
import type { NodeInfo } from '../../lib/node-registry.ts';
import { migrationRow, overview, RateHistory, timeline } from './model.ts';

const T0 = Date.parse('2026-11-27T10:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

function migration(name: string, phases: [string, number][], extra: Partial<StoredMigration['status']> = {}) {
  return {
    apiVersion: 'ferry.dev/v1alpha1',
    kind: 'Migration',
    metadata: {
      name,
      namespace: 'default',
      uid: `uid-${name}`,
      creationTimestamp: at(phases[0]![1]),
      generation: 1,
    },
    spec: { source: { node: 'node1', container: 'db' }, target: { node: 'node2' } },
    status: {
      phase: phases.at(-1)![0],
      phaseTransitionTimestamps: phases.map(([phase, s]) => ({ phase, time: at(s) })),
      migrationState: { sourceNode: 'node1', targetNode: 'node2', mode: 'StopAndCopy' },
      ...extra,
    },
  } as unknown as StoredMigration;
}

describe('the dashboard model', () => {
  it('spans each phase to the next, and the current one to now', () => {
    const m = migration('a', [
      ['Pending', 0],
      ['Preflight', 1],
      ['Syncing', 3],
    ]);
    assert.deepEqual(timeline(m, T0 + 10_000), [
      { phase: 'Pending', startMs: 0, ms: 1000 },
      { phase: 'Preflight', startMs: 1000, ms: 2000 },
      { phase: 'Syncing', startMs: 3000, ms: 7000 },
    ]);
    const done = migration('b', [
      ['Pending', 0],
      ['Restoring', 2],
      ['Succeeded', 5],
    ]);
    assert.deepEqual(timeline(done, T0 + 60_000).at(-1), { phase: 'Succeeded', startMs: 5000, ms: 0 });
  });

  it('makes a row with bytes, downtime, age and what is left to send', () => {
    const m = migration('a', [['Transferring', 0]], {
      migrationState: {
        sourceNode: 'node1',
        targetNode: 'node2',
        bytesBeforeFreeze: 100,
        bytesDuringFreeze: 20,
        downtimeMs: 900,
      },
    } as Partial<StoredMigration['status']>);
    const r = migrationRow(m, T0 + 5000, [
      { t: T0, step: 'transfer', bytes: 30, bytesPerSecond: 10, totalBytes: 100 },
    ]);
    assert.equal(r.bytes, 120);
    assert.equal(r.downtimeMs, 900);
    assert.equal(r.ageMs, 5000);
    assert.equal(r.remainingBytes, 70);
    assert.equal(r.source, 'node1/db');
    assert.equal(r.target, 'node2');
  });

  it('lists newest first, with each node’s migrations in and out and its queue', () => {
    const running = migration('new', [
      ['Pending', 10],
      ['Syncing', 11],
    ]);
    const old = migration('old', [
      ['Pending', 0],
      ['Succeeded', 5],
    ]);
    const info = {
      node: 'node1',
      address: '10.0.0.1',
      sshPort: 22,
      criuVersion: '4.2.1',
      criuProblem: null,
      labels: {},
      pid: 1,
      time: '',
    } as NodeInfo;
    const o = overview({
      cluster: 'test',
      now: T0 + 20_000,
      migrations: [old, running],
      nodes: new Map([['node1', info]]),
      queues: new Map([['node1', { waiting: 1, active: 2, delayed: 0, failed: 0 }]]),
      rates: () => [],
    });
    assert.deepEqual(
      o.migrations.map((m) => m.name),
      ['new', 'old'],
    );
    assert.deepEqual(o.nodes, [
      { node: 'node1', up: true, criuOk: true, criuVersion: '4.2.1', outbound: 1, inbound: 0 },
      { node: 'node2', up: false, criuOk: false, criuVersion: undefined, outbound: 0, inbound: 1 },
    ]);
    assert.deepEqual(o.queues, [{ node: 'node1', waiting: 1, active: 2, delayed: 0, failed: 0 }]);
  });

  it('keeps rate samples only when bytes moved, a bounded number, and forgets gone migrations', () => {
    const h = new RateHistory(3);
    h.record('u', 'sync', undefined, 1);
    h.record('u', 'sync', { bytes: 10, bytesPerSecond: 5 }, 2);
    h.record('u', 'sync', { bytes: 10, bytesPerSecond: 5 }, 3);
    for (let i = 1; i <= 4; i++) h.record('u', 'transfer', { bytes: 10 * i, bytesPerSecond: i }, 10 + i);
    assert.deepEqual(
      h.of('u').map((s) => s.t),
      [12, 13, 14],
    );
    h.retain(new Set());
    assert.deepEqual(h.of('u'), []);
  });
});
