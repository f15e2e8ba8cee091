import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTaskStatus } from './affinity.ts';

test('reads the namespace thread id and allowed CPUs from a task status file', () => {
  const status = 'Name:\tfeatures\nPid:\t4242\nNSpid:\t4242\t7\nCpus_allowed:\t1\nCpus_allowed_list:\t0\n';
  assert.deepEqual(parseTaskStatus(status), { nsTid: '7', cpus: '0' });
  assert.equal(parseTaskStatus('Name:\tx\n'), undefined);
});
