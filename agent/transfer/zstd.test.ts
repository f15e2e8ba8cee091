import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sampleFile, worthCompressing } from './zstd.ts';

test('compression is chosen only when it makes the data arrive clearly sooner', () => {
  // A slow link and data that halves: twice as fast.
  assert.equal(worthCompressing(50e6, { ratio: 0.5, bytesPerSecond: 400e6 }), true);
  // Random data (ratio about 1) never gains.
  assert.equal(worthCompressing(50e6, { ratio: 1.0, bytesPerSecond: 400e6 }), false);
  // A link faster than the compressor: compressing would slow it down.
  assert.equal(worthCompressing(1e9, { ratio: 0.3, bytesPerSecond: 400e6 }), false);
  // What bench/transfer.ts measured: ~270 MB/s unlimited, no; 64 MiB/s, yes.
  assert.equal(worthCompressing(270e6, { ratio: 0.25, bytesPerSecond: 450e6 }), false);
  assert.equal(worthCompressing(67e6, { ratio: 0.25, bytesPerSecond: 450e6 }), true);
  // A 5% gain is not worth a core.
  assert.equal(worthCompressing(100e6, { ratio: 0.96, bytesPerSecond: 400e6 }), false);
});

test('a sample tells zeros from random bytes', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-zstd-'));
  await writeFile(path.join(dir, 'zeros'), Buffer.alloc(2 * 1024 * 1024));
  await writeFile(path.join(dir, 'random'), randomBytes(2 * 1024 * 1024));
  const zeros = await sampleFile(path.join(dir, 'zeros'));
  const random = await sampleFile(path.join(dir, 'random'));
  assert.ok(zeros.ratio < 0.01, `zeros ratio ${zeros.ratio}`);
  assert.ok(random.ratio > 0.99, `random ratio ${random.ratio}`);
  assert.ok(zeros.bytesPerSecond > 0 && random.bytesPerSecond > 0);
});
