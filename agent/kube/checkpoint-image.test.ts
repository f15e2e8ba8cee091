import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { exec, run } from '../../lib/exec.ts';
import {
  ANNOTATION,
  buildCheckpointImage,
  checkpointAnnotations,
  importCommand,
  removeImageCommand,
  tagOf,
} from './checkpoint-image.ts';

const host = { criuVersion: '4.2.1', arch: 'amd64', kernel: '6.18.0' };
const work = await mkdtemp(path.join(tmpdir(), 'ferry-ckimg-'));
after(() => rm(work, { recursive: true, force: true }));

describe('checkpoint OCI images', () => {
  it('annotates what each runtime recorded: CRI-O, containerd, or a ferry container', () => {
    const crio = checkpointAnnotations(
      {
        name: 'k8s_db_x',
        runtime: 'crun',
        rootfsImageName: 'docker.io/library/postgres:16',
        rootfsImageRef: 'abc',
      },
      {
        'io.container.manager': 'cri-o',
        'io.kubernetes.container.name': 'postgres',
        'io.kubernetes.pod.name': 'db',
        'io.kubernetes.pod.namespace': 'shop',
      },
      host,
    );
    assert.equal(crio[ANNOTATION.engine], 'cri-o');
    assert.equal(crio[ANNOTATION.container], 'postgres');
    assert.equal(crio[ANNOTATION.pod], 'db');
    assert.equal(crio[ANNOTATION.namespace], 'shop');
    assert.equal(crio[ANNOTATION.runtime], 'crun');
    assert.equal(crio[ANNOTATION.rootfsImageName], 'docker.io/library/postgres:16');
    assert.equal(crio[ANNOTATION.rootfsImageID], 'abc');
    assert.equal(crio['io.kubernetes.cri-o.annotations.checkpoint.name'], 'postgres');
    const containerd = checkpointAnnotations(
      { id: 'x' },
      {
        'io.kubernetes.cri.container-name': 'web',
        'io.kubernetes.cri.sandbox-name': 'shop-0',
        'io.kubernetes.cri.sandbox-namespace': 'shop',
      },
      host,
    );
    assert.equal(containerd[ANNOTATION.engine], 'containerd');
    assert.equal(containerd[ANNOTATION.pod], 'shop-0');
    const ferry = checkpointAnnotations({ name: 'db', runtime: 'runc' }, undefined, host);
    assert.equal(ferry[ANNOTATION.engine], 'ferry');
    assert.equal(ferry[ANNOTATION.criuVersion], '4.2.1');
    assert.throws(() => checkpointAnnotations({}, {}, host), /names no container/);
  });

  it('builds an OCI archive that skopeo reads and imports into containers-storage, as CRI-O keeps images', async () => {
    const tree = path.join(work, 'archive');
    await mkdir(path.join(tree, 'checkpoint'), { recursive: true });
    await writeFile(path.join(tree, 'checkpoint', 'inventory.img'), 'criu images');
    await writeFile(path.join(tree, 'config.dump'), JSON.stringify({ name: 'db', runtime: 'runc' }));
    await writeFile(path.join(tree, 'spec.dump'), JSON.stringify({ ociVersion: '1.0.2' }));
    const archive = path.join(work, 'db.tar');
    await run('tar', ['--create', '--file', archive, '--directory', tree, '.']);
    const ref = 'localhost/ferry-checkpoint/db:abc123';
    const annotations = checkpointAnnotations({ name: 'db', runtime: 'runc' }, undefined, host);
    const out = path.join(work, 'db-image.tar');
    const built = await buildCheckpointImage({ archive, out, ref, annotations });
    assert.match(built.manifestDigest, /^sha256:[0-9a-f]{64}$/);

    // skopeo checks every blob's digest as it copies.
    const raw = await exec('skopeo', ['inspect', '--raw', `oci-archive:${out}:abc123`]);
    assert.equal(raw.code, 0, raw.stderr);
    const manifest = JSON.parse(raw.stdout) as {
      annotations: Record<string, string>;
      layers: { mediaType: string }[];
    };
    assert.deepEqual(manifest.annotations, annotations);
    assert.equal(manifest.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar');

    const store = { root: path.join(work, 'storage'), runRoot: path.join(work, 'run'), driver: 'vfs' };
    const stores = { criSocket: '/unused', ctr: 'ctr', imageStore: store };
    const [cmd, ...args] = importCommand('cri-o', out, ref, stores);
    const imported = await exec(cmd, args);
    assert.equal(imported.code, 0, imported.stderr);
    const there = await exec('skopeo', [
      'inspect',
      `containers-storage:[vfs@${store.root}+${store.runRoot}]${ref}`,
    ]);
    assert.equal(there.code, 0, there.stderr);
    assert.equal(
      (JSON.parse(there.stdout) as { Labels: Record<string, string> }).Labels[ANNOTATION.container],
      'db',
    );
    const [rm1, ...rmArgs] = removeImageCommand('cri-o', ref, stores);
    assert.equal((await exec(rm1, rmArgs)).code, 0);
    assert.notEqual(
      (await exec('skopeo', ['inspect', `containers-storage:[vfs@${store.root}+${store.runRoot}]${ref}`]))
        .code,
      0,
    );
  });

  it('names containerd’s import, and refuses what is not an image reference', () => {
    const stores = { criSocket: '/run/containerd/containerd.sock', ctr: 'ctr' };
    assert.deepEqual(importCommand('containerd', '/x/db.tar', 'localhost/ferry-checkpoint/db:abc', stores), [
      'ctr',
      '--address',
      '/run/containerd/containerd.sock',
      '--namespace',
      'k8s.io',
      'images',
      'import',
      '--local',
      '--base-name',
      'localhost/ferry-checkpoint/db',
      '/x/db.tar',
    ]);
    assert.equal(tagOf('localhost/ferry-checkpoint/db'), 'latest');
    assert.throws(() => tagOf('not a ref'), /not an image reference/);
  });
});
