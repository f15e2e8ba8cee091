import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Throttle, progressReport } from './throttle.ts';

test('the limiter lets a tenth of a second of burst through, then spaces sends to the rate', () => {
  const MiB = 2 ** 20;
  const t = new Throttle(10 * MiB, 0);
  assert.equal(t.delayFor(1 * MiB, 0), 0, 'the burst');
  assert.equal(t.delayFor(5 * MiB, 0), 500, 'then 5 MiB at 10 MiB/s waits half a second');
  assert.equal(t.delayFor(1 * MiB, 500), 100, 'the wait already served counts');
});

test('an average over a long send equals the limit', () => {
  const t = new Throttle(1000, 0);
  let clock = 0;
  for (let i = 0; i < 100; i++) clock += t.delayFor(100, clock);
  // 10 000 bytes at 1000 B/s, less the 100-byte burst: 9.9 s of waiting.
  assert.equal(clock, 9900);
});

test('progress reports rate and time left when the total is known', () => {
  assert.deepEqual(progressReport(50, 150, 0, 1000), {
    bytes: 50,
    bytesPerSecond: 50,
    totalBytes: 150,
    etaSeconds: 2,
  });
  assert.deepEqual(progressReport(50, undefined, 0, 2000), { bytes: 50, bytesPerSecond: 25 });
});
