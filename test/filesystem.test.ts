// Filesystem state across a move (issue 5's guarantees for the btrfs driver): nothing written
// before the freeze is lost, the received tree is the source's final snapshot to the byte, mode,
// owner and extended attribute, and a broken filesystem transfer leaves the source running and
// the target without partial subvolumes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, rm, stat, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '../cli/client.ts';
import { keyspace } from '../lib/keyspace.ts';
import { exec, run } from '../lib/exec.ts';
import { nodePaths } from '../lib/paths.ts';
import { filesystemOf } from '../agent/snapshot/fs-type.ts';
import {
  CLUSTER,
  armHook,
  expectRolledBack,
  runWithVolume,
  treeDigest,
  list,
  migrate,
  runWorkload,
  testCluster,
  unique,
  verify,
} from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

const rootfs = (node: string, container: string) =>
  path.join(nodePaths(CLUSTER, node).fsRoot, 'containers', container, 'rootfs');

test('the counter file on the target ends with the last value written before the freeze, and grows on', async () => {
  const container = unique('fs-counter');
  await runWorkload(c, 'node1', container, 8);
  const m = await migrate(c, unique('m-fs'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const read = async () =>
    (await readFile(path.join(rootfs('node2', container), 'data/counter.log'), 'utf8'))
      .trim()
      .split('\n')
      .map(Number);
  const lines = await read();
  lines.forEach((n, i) => assert.equal(n, i + 1, `line ${i + 1} holds ${n}: nothing lost or repeated`));
  await new Promise((r) => setTimeout(r, 300));
  const later = await read();
  assert.ok(later.length > lines.length, 'the restored process appends after the last value');
  later.forEach((n, i) => assert.equal(n, i + 1));
  assert.ok((await verify(c, 'node2', container)).pass);
  await c.bus.call('node2', { kind: 'remove', container });
});

test("the received tree is the source's final snapshot: content, mode, owner and extended attributes", async () => {
  const container = unique('fs-tree');
  await runWorkload(c, 'node1', container, 8);
  const src = rootfs('node1', container);
  // Things a careless copy loses: an owner, an odd mode, an extended attribute, a symlink.
  await writeFile(path.join(src, 'data/owned'), 'owned by 1234:5678', { mode: 0o640 });
  await chmod(path.join(src, 'data/owned'), 0o640); // whatever this process's umask
  await chown(path.join(src, 'data/owned'), 1234, 5678);
  await run('setfattr', ['-n', 'user.ferry', '-v', 'kept', path.join(src, 'data/owned')]);
  await run('ln', ['-s', '/data/owned', path.join(src, 'data/link')]);
  const name = unique('m-tree');
  const gate = unique('gate');
  await armHook(c, 'node2', 'target.beforeRestore', { action: 'block', release: gate, migration: name });
  const done = migrate(c, name, { node: 'node1', container }, 'node2');
  // While the target holds the restore, both frozen trees exist: compare them.
  let uid = '';
  for (let i = 0; i < 200 && !uid; i++) {
    const m = await c.store.get('default', name);
    if (m?.status?.phase === 'Restoring') uid = m.metadata.uid;
    else await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(uid, 'reached Restoring');
  const sourceFinal = path.join(nodePaths(CLUSTER, 'node1').fsRoot, 'snapshots', `${uid}-final`);
  const targetFinal = path.join(nodePaths(CLUSTER, 'node2').fsRoot, 'incoming', uid, `${uid}-final`);
  for (let i = 0; i < 100 && !existsSync(targetFinal); i++) await new Promise((r) => setTimeout(r, 100));
  const [a, b] = [await treeDigest(sourceFinal), await treeDigest(targetFinal)];
  await c.redis.set(keyspace.hookRelease(CLUSTER, gate), '1');
  assert.ok(
    a.some((l) => l.startsWith('data/owned 100640 1234:5678')),
    'the odd file is in the digest',
  );
  assert.ok(
    a.some((l) => l.includes('user.ferry="kept"')),
    'the xattr is in the digest',
  );
  assert.deepEqual(b, a);
  assert.equal((await done).status.phase, 'Succeeded');
  await c.bus.call('node2', { kind: 'remove', container });
});

test('a filesystem transfer that keeps breaking leaves the source running and no partial subvolume', async () => {
  const container = unique('fs-cut');
  await runWorkload(c, 'node1', container, 8);
  const v0 = await verify(c, 'node1', container);
  const name = unique('m-cut');
  // Every attempt of the running send breaks after 1 MiB.
  await armHook(c, 'node1', 'source.duringSync', {
    action: 'cut',
    afterBytes: 2 ** 20,
    times: 10,
    migration: name,
  });
  await migrate(c, name, { node: 'node1', container }, 'node2');
  await expectRolledBack(c, container, name, /sync on node1 failed/, v0.counter!);
  await c.redis.hdel(keyspace.agentHooks(CLUSTER, 'node1'), 'source.duringSync');
  await c.bus.call('node1', { kind: 'remove', container });
});

test('a large first running send is followed by a second running round, and the move loses nothing', async () => {
  const container = unique('fs-big');
  await runWorkload(c, 'node1', container, 8);
  // 80 MiB in the root filesystem makes the first send long enough for another round.
  await run('dd', [
    'if=/dev/urandom',
    `of=${path.join(rootfs('node1', container), 'data/big')}`,
    'bs=1M',
    'count=80',
    'status=none',
  ]);
  const m = await migrate(c, unique('m-big'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const job = await c.bus.queue('node1').getJob(`${m.metadata.uid}.sync`);
  assert.equal((job?.returnvalue as { rounds: number }).rounds, 2);
  assert.ok(
    (m.status.migrationState?.volumes?.[0]?.bytesDuringFreeze ?? Infinity) < 8 * 2 ** 20,
    'the frozen increment is small',
  );
  assert.ok((await verify(c, 'node2', container)).pass);
  assert.equal((await stat(path.join(rootfs('node2', container), 'data/big'))).size, 80 * 2 ** 20);
  await c.bus.call('node2', { kind: 'remove', container });
});

/** The test workload on node1 with an overlay root: the node's image below, its changes above. */
const runOverlay = (container: string) =>
  c.bus.call('node1', { kind: 'run', container, memoryMiB: 8, intervalMs: 10, rootfs: 'overlay' }, 120_000);

test('an overlay root filesystem moves as its rootfs diff over the same image on the target', async () => {
  const container = unique('fs-ovl');
  await runOverlay(container);
  const src = rootfs('node1', container);
  await writeFile(path.join(src, 'data/added'), 'only in the upper directory');
  await rm(path.join(src, 'bin/features')); // a whiteout over the image
  const m = await migrate(c, unique('m-ovl'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.equal(m.status.migrationState?.volumes?.[0]?.driver, 'overlay');
  const dst = rootfs('node2', container);
  assert.equal(await filesystemOf(dst), 'overlayfs');
  assert.equal(await readFile(path.join(dst, 'data/added'), 'utf8'), 'only in the upper directory');
  assert.ok(!existsSync(path.join(dst, 'bin/features')), 'the deletion moved too');
  assert.ok(existsSync(path.join(dst, 'bin/workload')), 'the image is below');
  assert.ok((await verify(c, 'node2', container)).pass);
  assert.ok(!existsSync(src), 'the source root is unmounted and gone');
  await c.bus.call('node2', { kind: 'remove', container });
});

test('an overlay container whose restore fails rolls back: source running, target unmounted and clean', async () => {
  const container = unique('fs-ovl-rb');
  await runOverlay(container);
  const v0 = await verify(c, 'node1', container);
  const name = unique('m-ovl-rb');
  await armHook(c, 'node2', 'target.beforeRestore', {
    action: 'corruptFile',
    file: 'checkpoint/pstree.img',
    migration: name,
  });
  await migrate(c, name, { node: 'node1', container }, 'node2');
  await expectRolledBack(c, container, name, /restore on node2 failed: CriuRestoreFailed/, v0.counter!);
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  assert.ok(!mounts.includes(rootfs('node2', container)), 'no overlay left mounted on the target');
  await c.bus.call('node1', { kind: 'remove', container });
  assert.ok(!(await readFile('/proc/self/mounts', 'utf8')).includes(rootfs('node1', container)));
});

test('a node-local volume moves with the container and is mounted where it was on the target', async () => {
  const container = unique('fs-vol');
  const vol = await runWithVolume(c, 'node1', container);
  await writeFile(path.join(vol, 'ledger'), 'entry 1\nentry 2\n');
  const m = await migrate(c, unique('m-vol'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const volumes = m.status.migrationState?.volumes ?? [];
  assert.deepEqual(
    volumes.map((v) => [v.name, v.driver]),
    [
      ['rootfs', 'btrfs'],
      ['state', 'btrfs'],
    ],
  );
  const pid = (await list(c, 'node2')).find((x) => x.id === container)?.pid;
  assert.ok(pid, 'running on node2');
  // Seen from inside the restored container, at the same place.
  assert.equal(await readFile(`/proc/${pid}/root/state/ledger`, 'utf8'), 'entry 1\nentry 2\n');
  assert.ok((await verify(c, 'node2', container)).pass);
  await c.bus.call('node2', { kind: 'remove', container });
  assert.ok(!existsSync(vol), 'the source volume is gone with its container');
});

test('a target that runs out of space after preflight rolls back cleanly, the source never frozen', async () => {
  const container = unique('fs-full');
  await runWorkload(c, 'node1', container, 8);
  const v0 = await verify(c, 'node1', container);
  const name = unique('m-full');
  const gate = unique('gate');
  await armHook(c, 'node1', 'source.beforeSync', { action: 'block', release: gate, migration: name });
  const done = migrate(c, name, { node: 'node1', container }, 'node2');
  // Preflight passed (there was room); now something else takes the target's space.
  for (let i = 0; i < 200 && (await c.store.get('default', name))?.status?.phase !== 'Syncing'; i++)
    await new Promise((r) => setTimeout(r, 50));
  const filler = path.join(nodePaths(CLUSTER, 'node2').fsRoot, 'filler');
  await mkdir(filler);
  try {
    // Subvolumes that earlier tests deleted are freed in the background: wait for that first, or
    // the space they give back later would let the send through.
    const fs2 = nodePaths(CLUSTER, 'node2').fsRoot;
    await run('btrfs', ['subvolume', 'sync', fs2]);
    // Take the space in shrinking pieces until the filesystem refuses (df's figure is optimistic),
    // and again until not even 1 MiB more can be written.
    let n = 0;
    const probe = path.join(filler, 'probe');
    for (let round = 0; round < 5; round++) {
      for (const size of [256 * 2 ** 20, 16 * 2 ** 20, 2 ** 20, 64 * 1024])
        while ((await exec('fallocate', ['-l', String(size), path.join(filler, `f${n++}`)])).code === 0);
      await run('btrfs', ['filesystem', 'sync', fs2]);
      const full =
        (await exec('dd', ['if=/dev/zero', `of=${probe}`, 'bs=1M', 'count=1', 'conv=fsync'])).code !== 0;
      await rm(probe, { force: true });
      if (full) break;
    }
  } finally {
    await c.redis.set(keyspace.hookRelease(CLUSTER, gate), '1');
  }
  try {
    await done;
    await expectRolledBack(c, container, name, /sync on node1 failed: .*No space left/i, v0.counter!);
  } finally {
    // Give the space back, and wait until btrfs has committed it: later tests need it.
    await rm(filler, { recursive: true, force: true });
    const fs2 = nodePaths(CLUSTER, 'node2').fsRoot;
    for (let i = 0; i < 100; i++) {
      await run('btrfs', ['filesystem', 'sync', fs2]);
      const free = Number((await run('df', ['--output=avail', '-B1', fs2])).trim().split('\n').pop());
      if (free > 512 * 2 ** 20) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await c.bus.call('node1', { kind: 'remove', container });
});
