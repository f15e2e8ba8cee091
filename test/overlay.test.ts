// The overlay driver on real overlay mounts: a container's changes (a file changed, one deleted,
// one added, a directory replaced, an owner and an xattr) travel as rootfs-diff.tar plus
// deleted.files and, applied over the same image on a fresh upper, give the same tree; a diff that
// would write outside the root is refused before anything is written.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec, run } from '../lib/exec.ts';
import { treeDigest } from './helpers.ts';
import {
  DELETED_FILES,
  DIFF_TAR,
  applyRootfsDiff,
  checkRootfsDiff,
  memberName,
  mountOverlay,
  safeRelative,
  writeRootfsDiff,
} from '../agent/snapshot/overlay.ts';

let dir: string;
const mounted: string[] = [];
before(async () => {
  dir = await mkdtemp('/tmp/ferry-overlay-');
});
after(async () => {
  for (const m of mounted.reverse()) await exec('umount', [m]);
  await rm(dir, { recursive: true, force: true });
});

async function overlay(name: string, lower: string): Promise<{ upper: string; merged: string }> {
  const [upper, work, merged] = ['upper', 'work', 'merged'].map((d) => path.join(dir, name, d)) as [
    string,
    string,
    string,
  ];
  for (const d of [upper, work, merged]) await mkdir(d, { recursive: true });
  await mountOverlay(lower, upper, work, merged);
  mounted.push(merged);
  return { upper, merged };
}

test('a rootfs diff carries changes, deletions, replaced directories, owners and xattrs', async () => {
  const lower = path.join(dir, 'image');
  await mkdir(path.join(lower, 'etc/conf.d'), { recursive: true });
  await writeFile(path.join(lower, 'etc/keep'), 'from the image');
  await writeFile(path.join(lower, 'etc/change'), 'old');
  await writeFile(path.join(lower, 'etc/remove'), 'gone soon');
  await writeFile(path.join(lower, 'etc/conf.d/a'), 'image a');
  const src = await overlay('src', lower);
  await writeFile(path.join(src.merged, 'etc/change'), 'new contents');
  await rm(path.join(src.merged, 'etc/remove'));
  await writeFile(path.join(src.merged, 'etc/added'), 'added', { mode: 0o600 });
  await chown(path.join(src.merged, 'etc/added'), 1234, 5678);
  await run('setfattr', ['-n', 'user.ferry', '-v', 'kept', path.join(src.merged, 'etc/added')]);
  await rm(path.join(src.merged, 'etc/conf.d'), { recursive: true });
  await mkdir(path.join(src.merged, 'etc/conf.d'));
  await writeFile(path.join(src.merged, 'etc/conf.d/b'), 'only b now');
  await run('ln', ['-s', '/etc/keep', path.join(src.merged, 'etc/link')]);

  const diff = path.join(dir, 'diff');
  await mkdir(diff);
  const changes = await writeRootfsDiff(src.upper, diff);
  assert.deepEqual(changes.deleted, ['etc/conf.d', 'etc/remove']);
  const dst = await overlay('dst', lower);
  await applyRootfsDiff(diff, dst.merged);
  assert.deepEqual(await treeDigest(dst.merged), await treeDigest(src.merged));
  assert.ok((await treeDigest(dst.merged)).some((l) => l.startsWith('etc/added 100600 1234:5678')));
});

test('a diff that would write outside the root is refused, naming the entry', async () => {
  assert.equal(safeRelative('etc/passwd'), true);
  assert.equal(safeRelative('../etc/passwd'), false);
  assert.equal(safeRelative('/etc/passwd'), false);
  assert.equal(memberName('-rw-r--r-- 0/0 5 2026-01-01 00:00 etc/a b -> /x'), 'etc/a b');
  const bad = path.join(dir, 'bad');
  await mkdir(bad);
  await writeFile(path.join(bad, DELETED_FILES), '../../etc/shadow\n');
  await run('tar', ['--create', '--file', path.join(bad, DIFF_TAR), '--files-from', '/dev/null']);
  await assert.rejects(checkRootfsDiff(bad), /StreamRejected|leaves the root/);
  await writeFile(path.join(bad, DELETED_FILES), '');
  await writeFile(path.join(dir, 'payload'), 'x');
  await run('tar', [
    '--create',
    '--file',
    path.join(bad, DIFF_TAR),
    '--absolute-names',
    '--directory',
    dir,
    '--transform',
    's,^,../,',
    'payload',
  ]);
  await assert.rejects(checkRootfsDiff(bad), /member "..\/payload" leaves the root/);
});
