import assert from 'node:assert/strict';
import { test } from 'node:test';
import { precopyStop } from './precopy-rule.ts';

test("P.Haul's pre-copy stop rule: 8 rounds, 64 pages or fewer, or a dirty set growing over 10%", () => {
  assert.equal(precopyStop([], 8), undefined);
  assert.equal(precopyStop([5000, 3000, 2000], 8), undefined);
  assert.equal(precopyStop([5000, 3000, 2000, 1500, 1400, 1300, 1200, 1100], 8), 'reached maxIterations (8)');
  assert.equal(precopyStop([5000, 64], 8), 'round 2 dirtied 64 pages (<= 64)');
  assert.equal(precopyStop([5000, 1000, 1101], 8), 'dirty set grew from 1000 to 1101 pages (> 10%)');
  assert.equal(precopyStop([5000, 1000, 1100], 8), undefined);
  assert.equal(precopyStop([5000, 4000], 2), 'reached maxIterations (2)');
});
