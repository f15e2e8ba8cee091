import { test } from 'node:test';
import assert from 'node:assert/strict';
import { storedMigration, T0 } from '../../test/fixtures/migrations.ts';
import { formatDuration } from '../../api/v1alpha1/quantity.ts';
import { withConditions } from './conditions.ts';

const NOW = '2026-01-01T00:00:09.000Z';
const types = (s: ReturnType<typeof withConditions>) =>
  Object.fromEntries((s.conditions ?? []).map((c) => [c.type, `${c.status}/${c.reason}`]));

test('an ended migration is Succeeded or Failed, each True only for its own outcome, with the downtime as a duration', () => {
  const won = storedMigration('Succeeded', {
    migrationState: { sourceNode: 'node1', targetNode: 'node2', downtimeMs: 1934 },
  });
  const s = withConditions(won, won.status, NOW);
  assert.deepEqual(types(s), { Progressing: 'False/Succeeded', Succeeded: 'True/MigrationSucceeded' });
  assert.equal(s.migrationState?.downtime, '1.93s');
  assert.equal(s.conditions?.find((c) => c.type === 'Succeeded')?.lastTransitionTime, NOW);

  const lost = storedMigration('Failed', {
    failureReason: 'restore on node2 failed: CriuRestoreFailed: CRIU says: bad image',
    migrationState: { sourceNode: 'node1', targetNode: 'node2', downtimeMs: 640 },
  });
  const f = withConditions(lost, lost.status, NOW);
  assert.deepEqual(types(f), { Progressing: 'False/Failed', Failed: 'True/MigrationFailed' });
  assert.match(
    f.conditions!.find((c) => c.type === 'Failed')!.message,
    /^restore on node2 failed: CriuRestoreFailed/,
  );
  assert.equal(f.migrationState?.downtime, '640ms', 'the freeze a rollback ended');

  const running = storedMigration('Syncing');
  assert.deepEqual(types(withConditions(running, running.status, T0)), { Progressing: 'True/Syncing' });
  assert.equal(withConditions(running, running.status, T0).migrationState?.downtime, undefined);
  assert.equal(formatDuration(999.6), '1000ms');
  assert.equal(formatDuration(61_234), '61.23s');
});
