import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration, parseQuantity } from './quantity.ts';

test('durations read like Kubernetes manifests', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration('250ms'), 250);
  for (const bad of ['', '10', '-5s', '5 s', '1d', 's']) assert.equal(parseDuration(bad), undefined, bad);
});

test('byte quantities take decimal and binary suffixes', () => {
  assert.equal(parseQuantity('100Mi'), 100 * 2 ** 20);
  assert.equal(parseQuantity('1G'), 1e9);
  assert.equal(parseQuantity('512'), 512);
  for (const bad of ['', '-1Mi', '1mi', '10 Mi', 'Mi']) assert.equal(parseQuantity(bad), undefined, bad);
});
