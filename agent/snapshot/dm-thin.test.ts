import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  activateCommand,
  deltaCommands,
  merge,
  parseDelta,
  parseDump,
  parsePoolBlockBytes,
  parseTargets,
  rangeBytes,
  snapshotCommands,
  unavailable,
} from './dm-thin.ts';

const pool = { pool: 'ferry-pool', metadata: '/dev/mapper/ferry-pool_tmeta' };

test('a thin snapshot suspends the origin around create_snap; commands are argument arrays', () => {
  assert.deepEqual(snapshotCommands(pool, 'vol-web', 1, 7), [
    ['dmsetup', 'suspend', 'vol-web'],
    ['dmsetup', 'message', 'ferry-pool', '0', 'create_snap 7 1'],
    ['dmsetup', 'resume', 'vol-web'],
  ]);
  assert.deepEqual(activateCommand(pool, 'snap-7', 7, 2097152), [
    'dmsetup',
    'create',
    'snap-7',
    '--table',
    '0 2097152 thin /dev/mapper/ferry-pool 7',
  ]);
});

test('thin_delta runs on a reserved metadata snapshot, released afterwards', () => {
  const cmds = deltaCommands(pool, 7, 8);
  assert.deepEqual(cmds[0], ['dmsetup', 'message', 'ferry-pool', '0', 'reserve_metadata_snap']);
  assert.deepEqual(cmds[1], ['thin_delta', '--metadata-snap', '--snap1', '7', '--snap2', '8', pool.metadata]);
  assert.deepEqual(cmds[2], ['dmsetup', 'message', 'ferry-pool', '0', 'release_metadata_snap']);
});

test("thin_delta's XML gives the blocks to send and those to discard", () => {
  const xml = `<superblock uuid="" time="1" transaction="2" data_block_size="128" nr_data_blocks="1024">
  <diff left="7" right="8">
    <same begin="0" length="10"/>
    <different begin="10" length="4"/>
    <right_only begin="14" length="2"/>
    <same begin="16" length="100"/>
    <left_only begin="200" length="3"/>
    <different begin="300" length="1"/>
  </diff>
</superblock>`;
  assert.deepEqual(parseDelta(xml), {
    send: [
      { begin: 10, length: 6 },
      { begin: 300, length: 1 },
    ],
    discard: [{ begin: 200, length: 3 }],
  });
});

test("thin_dump's mappings give the full send; ranges merge; sizes and tables parse", () => {
  const xml = `<device dev_id="7" mapped_blocks="5" transaction="0" creation_time="0" snap_time="1">
    <range_mapping origin_begin="0" data_begin="20" length="3" time="0"/>
    <single_mapping origin_block="3" data_block="40" time="0"/>
    <single_mapping origin_block="9" data_block="41" time="1"/>
  </device>`;
  assert.deepEqual(parseDump(xml), [
    { begin: 0, length: 4 },
    { begin: 9, length: 1 },
  ]);
  assert.deepEqual(
    merge([
      { begin: 5, length: 2 },
      { begin: 0, length: 6 },
    ]),
    [{ begin: 0, length: 7 }],
  );
  assert.equal(parsePoolBlockBytes('0 20971520 thin-pool 253:0 253:1 128 32768 1 skip_block_zeroing'), 65536);
  assert.throws(() => parsePoolBlockBytes('0 100 linear 8:1 0'), /not a thin-pool table/);
  assert.equal(rangeBytes([{ begin: 0, length: 4 }], 65536), 262144);
  assert.deepEqual(parseTargets('thin-pool        v1.23.0\nthin             v1.23.0\nlinear v1.4.0\n'), [
    'thin-pool',
    'thin',
    'linear',
  ]);
});

test('where the kernel has no dm-thin, the driver says why (its integration test is skipped for it)', async (t) => {
  const why = await unavailable();
  if (!why) return t.skip('this kernel has dm-thin: nothing to report');
  assert.match(why, /device-mapper does not work here|no dm "thin" target/);
});
