import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeNodeSchema } from '../../api/v1alpha1/cluster.ts';
import { emptyDirPath, packEmptyDirs, removeEmptyDirs, unpackEmptyDirs } from './pod-volumes.ts';

test('an emptyDir is packed whole while the pod runs and its changes while frozen, written into another pod’s folder with its modes and deletions, and removed on a rollback', async () => {
  const work = await mkdtemp(path.join(tmpdir(), 'ferry-vol-'));
  try {
    const node = (dir: string) =>
      KubeNodeSchema.parse({
        kubeletAddress: '10.0.0.1',
        tokenFile: '/t',
        runtime: 'containerd',
        kubeletDir: dir,
      });
    const src = node(path.join(work, 'src'));
    const dst = node(path.join(work, 'dst'));
    const from = emptyDirPath(src, 'uid-a', 'cache');
    await mkdir(path.join(from, 'sub'), { recursive: true });
    await writeFile(path.join(from, 'sub', 'log'), 'one\ntwo\n', { mode: 0o640 });
    await writeFile(path.join(from, 'old'), 'deleted while the pod runs');
    await writeFile(path.join(from, 'big'), Buffer.alloc(1 << 20, 7));
    // Older than level 0's margin (pod-volumes.ts): level 1 is then only what changed after it.
    await sleep(2200);
    const base = path.join(work, 'images');
    assert.deepEqual(await packEmptyDirs(src, 'uid-a', ['cache'], base, 0), [
      'pod-images/volume-cache.0.tar',
    ]);
    await assert.rejects(
      packEmptyDirs(src, 'uid-a', ['gone'], base, 0),
      /emptyDir gone of pod uid-a is not at/,
    );
    // Between the running pass and the freeze, the pod writes, adds and deletes.
    await writeFile(path.join(from, 'sub', 'log'), 'one\ntwo\nthree\n');
    await writeFile(path.join(from, 'sub', 'new'), 'added');
    await rm(path.join(from, 'old'));
    assert.deepEqual(await packEmptyDirs(src, 'uid-a', ['cache'], base, 1), [
      'pod-images/volume-cache.1.tar',
    ]);
    // Level 1 carries only what changed: the unchanged megabyte stayed in level 0.
    const size = async (level: number) =>
      (await stat(path.join(base, `pod-images/volume-cache.${level}.tar`))).size;
    assert.ok((await size(0)) > 1 << 20 && (await size(1)) < 64 * 1024);
    // A retried level 1 is the same increment again, not one against itself.
    await packEmptyDirs(src, 'uid-a', ['cache'], base, 1);
    assert.ok((await size(1)) > 0 && (await size(1)) < 64 * 1024);

    const [to] = await unpackEmptyDirs(dst, 'uid-b', ['cache'], base);
    assert.equal(to, path.join(work, 'dst/pods/uid-b/volumes/kubernetes.io~empty-dir/cache'));
    assert.equal(await readFile(path.join(to!, 'sub', 'log'), 'utf8'), 'one\ntwo\nthree\n');
    assert.equal(await readFile(path.join(to!, 'sub', 'new'), 'utf8'), 'added');
    assert.equal((await readFile(path.join(to!, 'big'))).length, 1 << 20);
    await assert.rejects(stat(path.join(to!, 'old')), /ENOENT/);
    assert.equal((await stat(path.join(to!, 'sub', 'log'))).mode & 0o777, 0o640);
    // Idempotent: a retried job writes the same folder again.
    await unpackEmptyDirs(dst, 'uid-b', ['cache'], base);
    assert.equal(await readFile(path.join(to!, 'sub', 'new'), 'utf8'), 'added');
    await removeEmptyDirs(dst, 'uid-b', ['cache']);
    await assert.rejects(stat(to!));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('a write right after level 0 began is in level 1, every time (the record is backdated)', async () => {
  // Unbackdated, GNU tar missed such a write about once in 40 here: file times lag the clock.
  const work = await mkdtemp(path.join(tmpdir(), 'ferry-vol-'));
  try {
    const kube = KubeNodeSchema.parse({
      kubeletAddress: '10.0.0.1',
      tokenFile: '/t',
      runtime: 'containerd',
      kubeletDir: work,
    });
    for (let i = 0; i < 40; i++) {
      const base = path.join(work, `images-${i}`);
      const from = emptyDirPath(kube, `uid-${i}`, 'cache');
      await mkdir(from, { recursive: true });
      await writeFile(path.join(from, 'log'), 'one\n');
      await packEmptyDirs(kube, `uid-${i}`, ['cache'], base, 0);
      await writeFile(path.join(from, 'log'), 'one\ntwo\n');
      await packEmptyDirs(kube, `uid-${i}`, ['cache'], base, 1);
      const [to] = await unpackEmptyDirs(kube, `copy-${i}`, ['cache'], base);
      assert.equal(await readFile(path.join(to!, 'log'), 'utf8'), 'one\ntwo\n', `run ${i}`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
