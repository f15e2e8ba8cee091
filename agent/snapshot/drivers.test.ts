import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseDriver, filesystemOf } from './drivers.ts';

test('the driver follows from what the volume lives on, and says why when none fits', () => {
  assert.equal(chooseDriver({ fsType: 'btrfs' }, {}).driver, 'btrfs');
  assert.equal(chooseDriver({ fsType: 'overlayfs' }, {}).driver, 'overlay');
  assert.equal(chooseDriver({ fsType: 'xfs', blockDevice: true }, {}).driver, 'dm-thin');
  assert.deepEqual(
    chooseDriver(
      { fsType: 'xfs', blockDevice: true },
      { thinProblem: 'the kernel offers no dm "thin" target' },
    ),
    {
      reason: 'a block volume needs dm-thin, and the kernel offers no dm "thin" target',
    },
  );
  assert.match(
    chooseDriver({ fsType: 'ext2/ext3' }, {}).reason ?? '',
    /on ext2\/ext3 has no snapshot driver/,
  );
});

test('the filesystem of a path is read from the kernel', async () => {
  assert.match(await filesystemOf('/proc'), /^proc$/);
});
