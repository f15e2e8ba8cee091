import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeRecord } from './records.ts';
import { settle, type SettleView } from './settle.ts';

const rec = (role: NodeRecord['role'], state: NodeRecord['state']): NodeRecord => ({
  role,
  state,
  peer: role === 'source' ? 'node2' : 'node1',
  migration: { uid: 'u-12345678', name: 'm', workload: 'container' },
  container: 'c',
  volumes: [],
  time: '2026-01-01T00:00:00Z',
});
const view = (v: Partial<SettleView>): SettleView => ({ selfFenced: false, inFlight: false, ...v });

test('nothing is settled while a job of the migration runs here or while it is live', () => {
  assert.equal(settle(rec('source', 'frozen'), view({ inFlight: true })).do, 'wait');
  assert.equal(settle(rec('source', 'frozen'), view({ live: { phase: 'Checkpointing' } })).do, 'wait');
  assert.equal(settle(rec('target', 'restored'), view({ live: { phase: 'Verifying' } })).do, 'wait');
});

test('a fenced target removes its copy of a live migration; a fenced source holds', () => {
  assert.equal(settle(rec('target', 'restored'), view({ live: {}, selfFenced: true })).do, 'removeTarget');
  assert.equal(settle(rec('source', 'handedOver'), view({ live: {}, selfFenced: true })).do, 'wait');
});

test('an ended migration settles by its outcome', () => {
  assert.equal(settle(rec('source', 'handedOver'), view({ ended: 'Succeeded' })).do, 'removeSource');
  assert.equal(settle(rec('target', 'restored'), view({ ended: 'Succeeded' })).do, 'keepTarget');
  assert.equal(settle(rec('source', 'frozen'), view({ ended: 'Failed' })).do, 'resumeSource');
  assert.equal(settle(rec('target', 'restoring'), view({ ended: 'Failed' })).do, 'removeTarget');
});

test('forgotten by the store: a source that never handed over thaws at once', () => {
  assert.deepEqual(settle(rec('source', 'frozen'), view({})), { do: 'resumeSource' });
});

test('forgotten by the store after the hand-over: the source asks, and the target decides', () => {
  assert.deepEqual(settle(rec('source', 'handedOver'), view({})), { do: 'askTarget' });
  assert.deepEqual(settle(rec('target', 'restored'), view({})), { do: 'keepTargetIfRunning' });
  assert.deepEqual(settle(rec('target', 'restoring'), view({})), {
    do: 'removeTarget',
    answer: 'targetDropped',
  });
  assert.deepEqual(settle(rec('source', 'handedOver'), view({ verdict: 'targetRuns' })), {
    do: 'removeSource',
  });
  assert.deepEqual(settle(rec('source', 'handedOver'), view({ verdict: 'targetDropped' })), {
    do: 'resumeSource',
  });
});
