// The dm-thin driver end to end without device-mapper (none on these machines): a recorded command
// runner plays the pool (thin devices are plain files; snapshots copy them; thin_dump and
// thin_delta answer from the files' blocks, in their real XML), and a fake session carries the
// files the source sends into the target's image folder. The volume restored on the target must
// equal the source's final snapshot, only changed blocks may cross while frozen, and the clean-up
// must delete exactly the snapshots the migration made.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fsLayout } from '../../lib/paths.ts';
import type { AgentContext } from '../context.ts';
import type { TransferSession } from '../transfer/sender.ts';
import { DmThinDriver, nextThinId, type ThinIo } from './dm-thin-driver.ts';

const BLOCK = 64 * 1024; // the pool's block size: 128 sectors
const BLOCKS = 32;

/** A thin pool in a folder: device N is the file dev-N; the runner answers as dmsetup and thin-tools. */
function fakePool(dir: string) {
  const calls: string[][] = [];
  const active = new Map<string, number>();
  const file = (id: number) => path.join(dir, `dev-${id}`);
  const ids = new Set<number>();
  const blocksDiffer = async (a: number, b: number) => {
    const [x, y] = [await readFile(file(a)), await readFile(file(b))];
    const out: number[] = [];
    for (let i = 0; i < BLOCKS; i++)
      if (!x.subarray(i * BLOCK, (i + 1) * BLOCK).equals(y.subarray(i * BLOCK, (i + 1) * BLOCK))) out.push(i);
    return out;
  };
  const io: ThinIo = {
    device: (name) => file(active.get(name) ?? -1),
    async run(argv) {
      calls.push(argv);
      const [cmd, ...a] = argv;
      if (cmd === 'dmsetup' && a[0] === 'table')
        return `0 ${(BLOCKS * BLOCK) / 512} thin-pool /dev/meta /dev/data 128 0`;
      if (cmd === 'dmsetup' && a[0] === 'create') {
        const id = Number(a[3]!.split(' ').at(-1));
        active.set(a[1]!, id);
        return '';
      }
      if (cmd === 'dmsetup' && a[0] === 'remove') {
        active.delete(a[1]!);
        return '';
      }
      if (cmd === 'dmsetup' && a[0] === 'suspend') return '';
      if (cmd === 'dmsetup' && a[0] === 'resume') return '';
      if (cmd === 'dmsetup' && a[0] === 'message') {
        const [verb, x, y] = a[3]!.split(' ');
        if (verb === 'create_snap') await copyFile(file(Number(y)), file(Number(x)));
        if (verb === 'create_thin') await writeFile(file(Number(x)), Buffer.alloc(BLOCKS * BLOCK));
        if (verb === 'delete') await rm(file(Number(x)));
        if (verb === 'create_snap' || verb === 'create_thin') ids.add(Number(x));
        if (verb === 'delete') ids.delete(Number(x));
        return '';
      }
      if (cmd === 'thin_dump') {
        const dev = a.indexOf('--dev-id');
        if (dev < 0)
          return [...ids].map((id) => `<device dev_id="${id}" mapped_blocks="${BLOCKS}"/>`).join('\n');
        return `<superblock><device dev_id="${a[dev + 1]}"><range_mapping origin_begin="0" data_begin="0" length="${BLOCKS}" time="0"/></device></superblock>`;
      }
      if (cmd === 'thin_delta') {
        const from = Number(a[a.indexOf('--snap1') + 1]);
        const to = Number(a[a.indexOf('--snap2') + 1]);
        const diff = await blocksDiffer(from, to);
        return `<diff left="${from}" right="${to}">\n${diff.map((b) => `<different begin="${b}" length="1"/>`).join('\n')}\n</diff>`;
      }
      throw new Error(`unexpected command ${argv.join(' ')}`);
    },
  };
  return { io, calls, file, ids };
}

function nodeCtx(root: string, node: string): AgentContext {
  const layout = fsLayout(path.join(root, node, 'fs'), path.join(root, node, 'images'));
  return {
    layout,
    config: { node, thinPool: { pool: `${node}-pool`, metadata: '/dev/meta' } },
  } as unknown as AgentContext;
}

/** Carries what the source sends into the target's image folder, as the receiver would. */
function carrier(target: AgentContext, uid: string) {
  const sent: string[] = [];
  const session = {
    async sendFile(file: string, name: string) {
      await mkdir(target.layout.images(uid), { recursive: true });
      await copyFile(file, path.join(target.layout.images(uid), name));
      sent.push(name);
      return (await stat(file)).size;
    },
  } as unknown as TransferSession;
  return { out: { session, compress: async () => false }, sent };
}

test('a thin volume moves as its mapped blocks, then only the blocks changed while it ran', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-thin-driver-'));
  try {
    const uid = 'abcdef12-3456';
    const v = { name: 'data', container: 'db', uid };
    const src = nodeCtx(root, 'node1');
    const dst = nodeCtx(root, 'node2');
    const srcPool = fakePool(path.join(root, 'pool1'));
    const dstPool = fakePool(path.join(root, 'pool2'));
    await mkdir(path.join(root, 'pool1'), { recursive: true });
    await mkdir(path.join(root, 'pool2'), { recursive: true });
    // The container's volume: thin device 1 in node1's pool, described in its bundle.
    await writeFile(srcPool.file(1), randomBytes(BLOCKS * BLOCK));
    srcPool.ids.add(1);
    await mkdir(path.join(src.layout.bundle('db'), 'thin'), { recursive: true });
    const desc = { pool: 'node1-pool', metadata: '/dev/meta', id: 1, sectors: (BLOCKS * BLOCK) / 512 };
    await writeFile(path.join(src.layout.bundle('db'), 'thin', 'data.json'), JSON.stringify(desc));

    const source = new DmThinDriver(srcPool.io);
    const target = new DmThinDriver(dstPool.io);
    const { out, sent } = carrier(dst, uid);
    assert.equal(await source.spaceEstimate(src, v), BLOCKS * BLOCK);
    const running = await source.sendRunning(src, v, out);
    assert.ok(running.bytes > BLOCKS * BLOCK, 'the full send carries every mapped block');

    // The workload writes two blocks; then it is frozen and the final snapshot taken.
    const live = await readFile(srcPool.file(1));
    randomBytes(BLOCK).copy(live, 3 * BLOCK);
    randomBytes(BLOCK).copy(live, 17 * BLOCK);
    await writeFile(srcPool.file(1), live);
    await source.snapshotFrozen(src, v);
    const frozen = await source.sendFrozen(src, v, out);
    assert.equal(frozen, 2 * (BLOCK + 12), 'only the two changed blocks cross while frozen');
    assert.deepEqual(sent, ['thin-data.json', 'thin-data-base.ranges', 'thin-data-final.ranges']);

    assert.equal(await target.received(dst, v), true);
    await target.restore(dst, v);
    const made = JSON.parse(await readFile(path.join(dst.layout.bundle('db'), 'thin', 'data.json'), 'utf8'));
    assert.equal(made.pool, 'node2-pool');
    assert.ok(
      (await readFile(dstPool.file(made.id))).equals(live),
      'the target volume equals the final snapshot',
    );

    // The source's clean-up deletes the two snapshots it made, and nothing else.
    await source.cleanup(src, uid);
    const deleted = srcPool.calls.filter((c) => c[4]?.startsWith('delete')).map((c) => c[4]);
    assert.equal(deleted.length, 2);
    assert.deepEqual([...srcPool.ids], [1]);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the next thin id is one past the highest the pool uses', () => {
  assert.equal(nextThinId(''), 1);
  assert.equal(nextThinId('<device dev_id="1" x="y"/>\n<device dev_id="7"/>'), 8);
});
