import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changedRows } from './resources.ts';

test('a watch prints a row once, and again only when it changed', () => {
  const seen = new Map<string, string>();
  const key = (r: string[]) => r[0]!;
  assert.deepEqual(
    changedRows(
      seen,
      [
        ['a', 'Pending'],
        ['b', 'Pending'],
      ],
      key,
    ),
    [
      ['a', 'Pending'],
      ['b', 'Pending'],
    ],
  );
  assert.deepEqual(
    changedRows(
      seen,
      [
        ['a', 'Pending'],
        ['b', 'Syncing'],
      ],
      key,
    ),
    [['b', 'Syncing']],
  );
  assert.deepEqual(
    changedRows(
      seen,
      [
        ['a', 'Pending'],
        ['b', 'Syncing'],
      ],
      key,
    ),
    [],
  );
  assert.deepEqual(changedRows(seen, [['c', 'Pending']], key), [['c', 'Pending']], 'a new one');
});
