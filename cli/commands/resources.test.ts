import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changedRows } from './resources.ts';

test('a watch prints a row once, and again only when it changed', () => {
  const seen = new Map<string, string>();
  const key = (r: string[]) => r[0]!;
  const first = [
    ['a', 'Pending'],
    ['b', 'Pending'],
  ];
  const later = [
    ['a', 'Pending'],
    ['b', 'Syncing'],
  ];
  assert.deepEqual(changedRows(seen, first, key), first);
  assert.deepEqual(changedRows(seen, later, key), [['b', 'Syncing']]);
  assert.deepEqual(changedRows(seen, later, key), [], 'nothing changed since');
  assert.deepEqual(changedRows(seen, [['c', 'Pending']], key), [['c', 'Pending']], 'a new one');
});
