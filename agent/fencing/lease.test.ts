import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Lease, LEASE_MS } from './lease.ts';

test('the lease counts from the start of the last renewal that succeeded, and a lapse starts an epoch', () => {
  let t = 0;
  const lease = new Lease(() => t);
  assert.equal(lease.held(), false, 'not held before the first renewal');
  assert.equal(lease.renewed(lease.mark()), true, 'the first renewal starts epoch 1');
  assert.equal(lease.epoch, 1);
  const start = lease.mark();
  t += 1500; // the write took 1.5 s: the lease still counts from its start
  assert.equal(lease.renewed(start), false);
  t = start + LEASE_MS - 1;
  assert.equal(lease.held(), true);
  t = start + LEASE_MS;
  assert.equal(lease.held(), false, 'lapsed once the lease time passed since the write began');
  assert.equal(lease.renewed(lease.mark()), true, 'renewed after a lapse: a new epoch');
  assert.equal(lease.epoch, 2);
});

test('a late success of an older renewal does not move the lease back', () => {
  let t = 10_000;
  const lease = new Lease(() => t);
  const older = lease.mark();
  t += 100;
  lease.renewed(lease.mark());
  lease.renewed(older);
  t = older + LEASE_MS + 50;
  assert.equal(lease.held(), true, 'the newer renewal still holds');
});
