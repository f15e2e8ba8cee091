import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { run } from '../../lib/exec.ts';
import { writeOciLayer } from './overlay.ts';

test('an upper directory as an OCI layer: its files, a deletion as .wh.NAME, an opaque directory marked', async () => {
  const work = await mkdtemp(path.join(tmpdir(), 'ferry-oci-layer-'));
  try {
    const upper = path.join(work, 'upper');
    await mkdir(path.join(upper, 'etc', 'conf.d'), { recursive: true });
    await writeFile(path.join(upper, 'etc', 'app.conf'), 'x=1\n');
    // overlayfs's marks: a 0/0 character device for a deleted path, trusted.overlay.opaque for a
    // directory whose lower contents are hidden.
    await run('mknod', [path.join(upper, 'etc', 'gone'), 'c', '0', '0']);
    await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(upper, 'etc', 'conf.d')]);
    const file = path.join(work, 'layer.tar');
    await writeOciLayer(upper, file);
    const members = (await run('tar', ['--list', '--file', file])).split('\n').filter(Boolean).sort();
    assert.deepEqual(members, [
      'etc/',
      'etc/.wh.gone',
      'etc/app.conf',
      'etc/conf.d/',
      'etc/conf.d/.wh..wh..opq',
    ]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
