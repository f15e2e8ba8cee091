import { test } from 'node:test';
import assert from 'node:assert/strict';
import { criuTooOld, dumpableBytes, fdProblem, memoryPolicies, spaceProblem } from './preflight.ts';

test('stateless devices, pseudo-terminals and files pass; io_uring and unknown devices do not', () => {
  assert.equal(fdProblem('/dev/null', true), undefined);
  assert.equal(fdProblem('/dev/pts/0', true), undefined);
  assert.equal(fdProblem('/data/counter.log', false), undefined);
  assert.equal(fdProblem('pipe:[1234]', false), undefined);
  assert.match(fdProblem('anon_inode:[io_uring]', false)!, /io_uring instance, which CRIU cannot checkpoint/);
  assert.match(fdProblem('/dev/loop-control', true)!, /device \/dev\/loop-control/);
  assert.match(fdProblem('anon_inode:[perf_event]', false)!, /perf_event/);
});

test('space is refused with the numbers, and a margin', () => {
  assert.equal(spaceProblem('images', 2 ** 30, 256 * 2 ** 20), undefined);
  const e = spaceProblem('images on node2', 100 * 2 ** 20, 256 * 2 ** 20);
  assert.equal(e?.code, 'InsufficientSpace');
  assert.match(e!.message, /images on node2: 100 MiB free, 298 MiB needed/);
});

test('CRIU must be 4.2 or newer', () => {
  assert.equal(criuTooOld('3.17.1'), true);
  assert.equal(criuTooOld('4.1.1'), true);
  assert.equal(criuTooOld('4.2.1'), false);
  assert.equal(criuTooOld('5.0'), false);
});

test('NUMA memory policies are found in numa_maps, default ones ignored', () => {
  assert.deepEqual(
    memoryPolicies({
      10: '00400000 default file=/bin/x mapped=1\n7f0000000000 prefer:0 anon=1\n',
      11: '00400000 default anon=2\n',
      12: '7f0000000000 bind:0 anon=1\n7f0000001000 prefer:0 anon=1\n',
    }),
    ['pid 10: prefer:0', 'pid 12: bind:0, prefer:0'],
  );
});

test('memory to dump counts shared pages once across processes (Pss), and only anonymous and shared ones', () => {
  // A PostgreSQL backend: 131 MiB resident, mostly shared buffers it shares with the others.
  const rollup =
    'Rss:              134400 kB\nPss:               19688 kB\nPss_Anon:            600 kB\nPss_File:          12067 kB\nPss_Shmem:          7019 kB\n';
  assert.equal(dumpableBytes(rollup, 'VmRSS:\t  134400 kB\n'), (600 + 7019) * 1024);
  // A kernel without the split in smaps_rollup: the resident size, as before.
  assert.equal(dumpableBytes('Rss: 100 kB\nPss: 90 kB\n', 'Name:\tx\nVmRSS:\t    2048 kB\n'), 2048 * 1024);
  assert.equal(dumpableBytes('', ''), undefined);
});
