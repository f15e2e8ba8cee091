// The dm-thin driver against a real thin pool on loop devices: a volume, a snapshot, changes, a
// second snapshot; only thin_delta's changed blocks are copied into a second volume, which must
// then equal the newer snapshot. Skipped, with the reason, where the kernel has no dm-thin (as on
// this project's machines: shared/environment.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../lib/exec.ts';
import {
  activateCommand,
  deltaCommands,
  parseDelta,
  parsePoolBlockBytes,
  readRanges,
  runCommand,
  snapshotCommands,
  unavailable,
  writeRanges,
} from '../agent/snapshot/dm-thin.ts';

const why = await unavailable();

test(
  'only the changed blocks of a thin volume move, and the copy equals the snapshot',
  { skip: why },
  async () => {
    const dir = await mkdtemp('/tmp/ferry-thin-');
    const loop = async (file: string, mib: number) => {
      await run('truncate', ['-s', `${mib}M`, file]);
      return (await run('losetup', ['--find', '--show', file])).trim();
    };
    const meta = await loop(path.join(dir, 'meta'), 16);
    const data = await loop(path.join(dir, 'data'), 256);
    const sectors = (256 * 2 ** 20) / 512;
    const pool = { pool: 'ferry-test-pool', metadata: meta };
    try {
      await run('dmsetup', [
        'create',
        pool.pool,
        '--table',
        `0 ${sectors} thin-pool ${meta} ${data} 128 32768`,
      ]);
      const blockBytes = parsePoolBlockBytes(await run('dmsetup', ['table', pool.pool]));
      const volSectors = (64 * 2 ** 20) / 512;
      for (const id of [1, 4]) await runCommand(['dmsetup', 'message', pool.pool, '0', `create_thin ${id}`]);
      await runCommand(activateCommand(pool, 'ferry-test-vol', 1, volSectors));
      await runCommand(activateCommand(pool, 'ferry-test-copy', 4, volSectors));
      await run('dd', [
        'if=/dev/urandom',
        'of=/dev/mapper/ferry-test-vol',
        'bs=1M',
        'count=8',
        'oflag=direct',
      ]);
      for (const c of snapshotCommands(pool, 'ferry-test-vol', 1, 2)) await runCommand(c);
      await run('dd', [
        'if=/dev/urandom',
        'of=/dev/mapper/ferry-test-vol',
        'bs=1M',
        'count=1',
        'seek=20',
        'oflag=direct',
      ]);
      for (const c of snapshotCommands(pool, 'ferry-test-vol', 1, 3)) await runCommand(c);
      // Full send of snapshot 2, then the delta 2 -> 3, both as block records.
      await runCommand(activateCommand(pool, 'ferry-test-s2', 2, volSectors));
      await runCommand(activateCommand(pool, 'ferry-test-s3', 3, volSectors));
      await writeRanges(
        '/dev/mapper/ferry-test-copy',
        readRanges(
          '/dev/mapper/ferry-test-s2',
          [{ begin: 0, length: (volSectors * 512) / blockBytes }],
          blockBytes,
        ),
      );
      const [reserve, delta, release] = deltaCommands(pool, 2, 3);
      await runCommand(reserve!);
      const { send } = parseDelta(await runCommand(delta!));
      await runCommand(release!);
      const sent = await writeRanges(
        '/dev/mapper/ferry-test-copy',
        readRanges('/dev/mapper/ferry-test-s3', send, blockBytes),
      );
      assert.ok(sent <= 2 * 2 ** 20, `sent ${sent} bytes for a 1 MiB change`);
      const sum = async (dev: string) =>
        createHash('sha256')
          .update(await readFile(dev))
          .digest('hex');
      assert.equal(await sum('/dev/mapper/ferry-test-copy'), await sum('/dev/mapper/ferry-test-s3'));
    } finally {
      for (const d of ['ferry-test-s3', 'ferry-test-s2', 'ferry-test-copy', 'ferry-test-vol', pool.pool])
        await run('dmsetup', ['remove', d]).catch(() => undefined);
      for (const l of [meta, data]) await run('losetup', ['-d', l]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  },
);
