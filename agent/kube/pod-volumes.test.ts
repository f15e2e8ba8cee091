import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { KubeNodeSchema } from '../../api/v1alpha1/cluster.ts';
import { emptyDirPath, packEmptyDirs, removeEmptyDirs, unpackEmptyDirs } from './pod-volumes.ts';

test('an emptyDir is packed from one pod’s folder, written into another’s with its modes, and removed on a rollback', async () => {
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
    const base = path.join(work, 'images');
    await mkdir(path.join(base, 'pod-images'), { recursive: true });
    assert.deepEqual(await packEmptyDirs(src, 'uid-a', ['cache'], base), ['pod-images/volume-cache.tar']);
    await assert.rejects(packEmptyDirs(src, 'uid-a', ['gone'], base), /emptyDir gone of pod uid-a is not at/);

    const [to] = await unpackEmptyDirs(dst, 'uid-b', ['cache'], base);
    assert.equal(to, path.join(work, 'dst/pods/uid-b/volumes/kubernetes.io~empty-dir/cache'));
    assert.equal(await readFile(path.join(to!, 'sub', 'log'), 'utf8'), 'one\ntwo\n');
    assert.equal((await stat(path.join(to!, 'sub', 'log'))).mode & 0o777, 0o640);
    // Idempotent: a retried job writes the same folder again.
    await unpackEmptyDirs(dst, 'uid-b', ['cache'], base);
    await removeEmptyDirs(dst, 'uid-b', ['cache']);
    await assert.rejects(stat(to!));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
