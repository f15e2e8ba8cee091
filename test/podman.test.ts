// Podman's checkpoint archives both ways, against the real Podman (Debian 12's 4.3.1, with runc and
// ferry's CRIU found through PATH): `ferry import` of `podman container checkpoint --export` (plain,
// gzip, zstd; of a stopped and of a running source) restores over the same image, read from
// containers-storage with skopeo, with the diff and deletions applied and no host path of Podman's
// used; `podman container restore --import` of a `ferry export` runs, its volume with it; and
// checkpointctl reads both.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '../cli/client.ts';
import { exec, run } from '../lib/exec.ts';
import { FERRY_OPT, nodePaths } from '../lib/paths.ts';
import { CLUSTER, list, runWithVolume, testCluster, unique, until } from './helpers.ts';

// Podman runs runc, and runc the `criu` it finds first: ferry's.
process.env.PATH = `${FERRY_OPT}/bin:${process.env.PATH ?? ''}`;

const IMAGE = 'localhost/ferry-test-busybox:1';
// This kernel refuses Podman's default rlimits (shared/environment.md).
const ULIMITS = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096', '--runtime', 'runc'];
/**
 * Deletes a file of the image, fills /dev/shm, then counts in /tmp/c, once a second: a dump that
 * catches the shell inside `echo > /tmp/c` records the file open and empty, and Podman's
 * --leave-running export takes the root's diff only after the container runs on, so the two then
 * disagree and CRIU refuses the restore ("bad size"), Podman's race, not ferry's. Writing seldom
 * keeps that window small.
 */
const COUNTER =
  'rm /bin/ls; echo kept > /dev/shm/s; i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 1; done';

let c: Client;
let dir: string;
const podmanContainers: string[] = [];
const podmanVolumes: string[] = [];

const podman = (...args: string[]) => run('podman', args);
const checkpointctl = (...args: string[]) => run(path.join(FERRY_OPT, 'bin', 'checkpointctl'), args);

before(async () => {
  c = await testCluster();
  dir = await mkdtemp('/tmp/ferry-podman-');
  // An image made here, as a user would without a registry: a busybox root imported into Podman.
  const root = path.join(dir, 'busybox-root');
  await mkdir(path.join(root, 'bin'), { recursive: true });
  for (const d of ['tmp', 'etc', 'proc', 'sys', 'dev']) await mkdir(path.join(root, d));
  await run('cp', ['/bin/busybox', path.join(root, 'bin/busybox')]);
  for (const a of ['sh', 'sleep', 'cat', 'echo', 'ls', 'rm'])
    await symlink('busybox', path.join(root, 'bin', a));
  await run('bash', ['-c', `tar -C ${root} -c . | podman import --quiet - ${IMAGE}`]);
});

after(async () => {
  for (const p of podmanContainers) await exec('podman', ['rm', '--force', p]);
  for (const v of podmanVolumes) await exec('podman', ['volume', 'rm', '--force', v]);
  await c.close();
  await rm(dir, { recursive: true, force: true });
});

/** Copies an archive into node2's image folder and imports it there as `name`. */
async function importAs(name: string, archive: string, image?: string) {
  const at = path.join(nodePaths(CLUSTER, 'node2').imagesDir, `incoming-${name}.tar`);
  await run('cp', [archive, at]);
  try {
    const job = { kind: 'import' as const, container: name, archive: at, ...(image ? { image } : {}) };
    return await c.bus.call('node2', job, 180_000);
  } finally {
    await rm(at, { force: true });
  }
}

/** A Podman container running the counter, checkpointed into an archive. */
async function podmanArchive(compress: string, leaveRunning: boolean, extra: string[] = []) {
  const name = unique('pod');
  podmanContainers.push(name);
  await podman('run', '--detach', '--name', name, ...ULIMITS, ...extra, IMAGE, 'sh', '-c', COUNTER);
  assert.ok(
    await until(async () => (await exec('podman', ['exec', name, 'cat', '/tmp/c'])).code === 0, 10_000),
  );
  const archive = path.join(
    dir,
    `${name}.tar${compress === 'none' ? '' : `.${compress === 'gzip' ? 'gz' : 'zst'}`}`,
  );
  const leave = leaveRunning ? ['--leave-running'] : [];
  await podman('container', 'checkpoint', ...leave, '--export', archive, '--compress', compress, name);
  return { name, archive };
}

const bundleOf = (name: string) => path.join(nodePaths(CLUSTER, 'node2').fsRoot, 'containers', name);

/** Nothing of a refused import is left on node2. */
async function nothingLeft(name: string) {
  assert.ok(!(await list(c, 'node2')).some((x) => x.id === name), 'no container');
  assert.ok(!existsSync(bundleOf(name)), 'no bundle');
  assert.ok(!existsSync(path.join(nodePaths(CLUSTER, 'node2').imagesDir, `import-${name}`)), 'no folder');
}

let kept: { name: string; archive: string } | undefined;

for (const [compress, leaveRunning] of [
  ['gzip', false],
  ['zstd', true],
  ['none', false],
] as const)
  test(`a Podman archive (${compress}, source ${leaveRunning ? 'left running' : 'stopped'}) restores and runs on a ferry node, over the same image`, async () => {
    const { name, archive } = await podmanArchive(compress, leaveRunning);
    kept ??= { name, archive };
    const ferryName = unique('from-pod');
    await importAs(ferryName, archive);
    assert.equal((await list(c, 'node2')).find((x) => x.id === ferryName)?.status, 'running');
    const root = path.join(bundleOf(ferryName), 'rootfs');
    const counter = async () => Number(await readFile(path.join(root, 'tmp/c'), 'utf8'));
    const first = await counter();
    assert.ok(await until(async () => (await counter()) > first, 10_000), 'its counter goes on');
    assert.ok(!existsSync(path.join(root, 'bin/ls')), 'the image file it deleted stays deleted');
    assert.ok(existsSync(path.join(root, 'bin/cat')), 'the rest of the image is there');
    assert.equal(await readFile(path.join(bundleOf(ferryName), 'engine/shm/s'), 'utf8'), 'kept\n');
    // ferry's own spec: no path of Podman's host, the root in the bundle.
    const spec = await readFile(path.join(bundleOf(ferryName), 'config.json'), 'utf8');
    assert.ok(!/\/var\/lib\/containers|\/run\/containers/.test(spec), 'no Podman host path in the spec');
    assert.equal((JSON.parse(spec) as { root: { path: string } }).root.path, 'rootfs');
    if (leaveRunning) {
      // Two containers now, each with its own files: never one file shared between them.
      assert.equal((await podman('inspect', '--format', '{{.State.Status}}', name)).trim(), 'running');
      const merged = (await podman('inspect', '--format', '{{.GraphDriver.Data.MergedDir}}', name)).trim();
      const [ours, theirs] = await Promise.all([
        stat(path.join(root, 'tmp/c')),
        stat(path.join(merged, 'tmp/c')),
      ]);
      assert.notDeepEqual([ours.dev, ours.ino], [theirs.dev, theirs.ino]);
    }
    await c.bus.call('node2', { kind: 'remove', container: ferryName });
  });

test('a Podman archive binding a host folder is refused naming it, before anything is unpacked', async () => {
  const { archive } = await podmanArchive('none', false, ['--volume', '/etc:/host-etc:ro']);
  const name = unique('bind');
  await assert.rejects(importAs(name, archive), /spec\.dump: mounts\[\d+\]: bind \/etc at \/host-etc: /);
  await nothingLeft(name);
});

test('a Podman archive whose image this node cannot read is refused naming the image', async () => {
  assert.ok(kept, 'an archive from the first test');
  const name = unique('noimg');
  await assert.rejects(
    importAs(name, kept.archive, 'containers-storage:localhost/ferry-test-absent:1'),
    /image containers-storage:localhost\/ferry-test-absent:1 cannot be read on this node/,
  );
  await nothingLeft(name);
});

test('Podman restores a ferry export (its volume as a named volume), and checkpointctl reads it', async () => {
  const container = unique('to-pod');
  const vol = await runWithVolume(c, 'node1', container);
  await writeFile(path.join(vol, 'ledger'), 'kept\n');
  const r = await c.bus.call('node1', { kind: 'export', container, stop: true }, 180_000);
  const archive = path.join(dir, `${container}.tar`);
  await run('mv', [r.archive, archive]);
  await chmod(archive, 0o600);
  // The base image the export names, given to Podman as the CLI says.
  await run('skopeo', ['copy', '--quiet', r.baseImage.ref, `containers-storage:${r.baseImage.name}`]);
  const show = await checkpointctl('show', archive);
  for (const want of [container, r.baseImage.name, 'runc'])
    assert.ok(show.includes(want), `${want} in:\n${show}`);
  podmanContainers.push(container);
  podmanVolumes.push(`ferry-${container}-state`, `ferry-${container}-self`);
  await podman('container', 'restore', '--import', archive);
  assert.equal((await podman('inspect', '--format', '{{.State.Status}}', container)).trim(), 'running');
  assert.equal(await podman('exec', container, '/bin/busybox', 'cat', '/state/ledger'), 'kept\n');
  // The workload checks its own memory and files when signalled (agent/workload.ts does the same).
  await podman('exec', container, '/bin/busybox', 'rm', '-f', '/data/verify.txt');
  await podman('kill', '--signal', 'USR1', container);
  let line = '';
  for (let i = 0; i < 100 && !line; i++, await sleep(100))
    line = (
      await exec('podman', ['exec', container, '/bin/busybox', 'cat', '/data/verify.txt'])
    ).stdout.trim();
  assert.match(line, /^PASS /);
});

test('checkpointctl reads a Podman archive: its name, image and engine', async () => {
  assert.ok(kept, 'an archive from the first test');
  const show = await checkpointctl('show', kept.archive);
  for (const want of [kept.name, IMAGE, 'Podman']) assert.ok(show.includes(want), `${want} in:\n${show}`);
  const tree = await checkpointctl('inspect', '--ps-tree', '--files', '--mounts', kept.archive);
  assert.ok(/\[1\]\s+sh/.test(tree) && tree.includes('/dev/shm'), tree);
});
