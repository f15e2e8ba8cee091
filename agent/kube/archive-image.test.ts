import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { run } from '../../lib/exec.ts';
import { imageFromStream } from './archive-image.ts';
import { ANNOTATION, HOST_FILE } from './checkpoint-image.ts';

const REF = 'localhost/ferry-checkpoint/app:abc123';
const HOST = { criuVersion: '4.2', arch: 'amd64', kernel: '6.1.0-source' };

/** A streamed dump as the target holds it: the source's archive (no pages) and the pages in pod-0. */
async function arrived(base: string, files: Record<string, string>, extra: string[] = []): Promise<void> {
  const dir = path.join(base, 'src');
  await mkdir(path.join(dir, 'checkpoint'), { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  await mkdir(path.join(base, 'pod-images'), { recursive: true });
  const archive = path.join(base, 'pod-images/app.tar');
  await run('tar', ['--create', '--file', archive, '--directory', dir, '.', ...extra]);
  await mkdir(path.join(base, 'pod-0'), { recursive: true });
  await writeFile(path.join(base, 'pod-0/pagemap-1.img'), 'map');
  await writeFile(path.join(base, 'pod-0/pages-1.img'), 'the pages');
}

const whole = {
  'checkpoint/core-1.img': 'core',
  'config.dump': JSON.stringify({ id: 'c1', name: 'app_web_default_u_0', rootfsImageName: 'counter:1' }),
  'spec.dump': JSON.stringify({ annotations: { 'io.kubernetes.cri.container-name': 'app' } }),
  [HOST_FILE]: JSON.stringify(HOST),
};

test('a streamed dump’s image is built on the target: the archive with the pages linked in, annotated with the source’s facts', async () => {
  const base = await mkdtemp(path.join(tmpdir(), 'ferry-stream-'));
  try {
    await arrived(base, whole);
    const out = await imageFromStream(base, { file: 'pod-images/app.tar', ref: REF, pages: 'pod-0' });
    const layout = path.join(base, 'layout');
    await mkdir(layout);
    await run('tar', ['--extract', '--file', out, '--directory', layout]);
    const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    const a = index.manifests[0]!.annotations;
    assert.deepEqual(
      [a[ANNOTATION.container], a[ANNOTATION.hostKernel], a[ANNOTATION.engine]],
      ['app', '6.1.0-source', 'containerd'],
    );
    const manifest = JSON.parse(
      await readFile(path.join(layout, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8'),
    ) as { layers: { digest: string }[] };
    const layer = path.join(layout, 'blobs/sha256', manifest.layers[0]!.digest.slice(7));
    const members = (await run('tar', ['--list', '--file', layer])).split('\n');
    for (const m of [
      './checkpoint/pages-1.img',
      './checkpoint/pagemap-1.img',
      './checkpoint/core-1.img',
      './config.dump',
    ])
      assert.ok(members.includes(m), `${m} in ${members.join(' ')}`);
    // A retried import builds it again from the same files.
    await imageFromStream(base, { file: 'pod-images/app.tar', ref: REF, pages: 'pod-0' });
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test('a streamed archive that does not say where it was dumped, or leaves its folder, is refused', async () => {
  const base = await mkdtemp(path.join(tmpdir(), 'ferry-stream-'));
  try {
    const { [HOST_FILE]: _gone, ...nameless } = whole;
    await arrived(base, nameless);
    await assert.rejects(imageFromStream(base, { file: 'pod-images/app.tar', ref: REF, pages: 'pod-0' }), {
      code: 'StreamRejected',
      message: /has no valid ferry-host\.json/,
    });
    await rm(base, { recursive: true, force: true });
    await mkdir(base);
    await writeFile(path.join(base, 'outside'), 'x');
    await arrived(base, whole, ['--absolute-names', path.join(base, 'outside')]);
    await assert.rejects(imageFromStream(base, { file: 'pod-images/app.tar', ref: REF, pages: 'pod-0' }), {
      code: 'StreamRejected',
    });
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
