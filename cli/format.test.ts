import { test } from 'node:test';
import assert from 'node:assert/strict';
import { age, bytes, ms, table, timeline } from './format.ts';
import { progressLine } from './watch.ts';
import type { StoredMigration } from '../api/v1alpha1/migration.ts';

test('sizes and durations read like kubectl output', () => {
  assert.equal(bytes(512), '512 B');
  assert.equal(bytes(256 * 1024 * 1024), '256.0 MiB');
  assert.equal(ms(742), '742ms');
  assert.equal(ms(1500), '1.50s');
  assert.equal(age('2026-01-01T00:00:00Z', Date.parse('2026-01-01T00:05:00Z')), '5m');
});

test('tables pad every column but the last', () => {
  assert.equal(table(['A', 'BB'], [['xyz', '1']]), 'A     BB\nxyz   1');
});

test('the timeline shows when each phase began and how long it took', () => {
  const m = {
    metadata: { creationTimestamp: '2026-01-01T00:00:00.000Z' },
    status: {
      phaseTransitionTimestamps: [
        { phase: 'Pending', time: '2026-01-01T00:00:00.000Z' },
        { phase: 'Preflight', time: '2026-01-01T00:00:00.100Z' },
        { phase: 'Succeeded', time: '2026-01-01T00:00:01.600Z' },
      ],
    },
  } as unknown as StoredMigration;
  assert.equal(
    timeline(m),
    [
      'PHASE       AT       TOOK',
      'Pending     +0ms     100ms',
      'Preflight   +100ms   1.50s',
      'Succeeded   +1.60s',
    ].join('\n'),
  );
});

const T = '2026-01-01T00:00:00.000Z';

test('progress lines show a bar when the total is known, and bytes, rate and time left', () => {
  assert.equal(
    progressLine({
      step: 'transfer',
      updatedAt: T,
      bytes: 64 * 2 ** 20,
      totalBytes: 256 * 2 ** 20,
      bytesPerSecond: 128 * 2 ** 20,
      etaSeconds: 2,
    }),
    '             transfer: [#####...............] 25% 64.0 MiB of 256.0 MiB sent at 128.0 MiB/s, 2s left',
  );
  assert.equal(
    progressLine({ step: 'checkpoint', updatedAt: T, bytes: 2 ** 20, bytesPerSecond: 2 ** 20 }),
    '             checkpoint: 1.0 MiB sent at 1.0 MiB/s',
  );
  assert.equal(progressLine(undefined), '');
});
