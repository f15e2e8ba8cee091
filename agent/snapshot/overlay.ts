// The overlay driver: for root filesystems that are overlay mounts (a read-only image below, the
// container's changes in the upper directory), what moves is the rootfs diff, the way Podman and
// CRI-O write it into their checkpoint archives: a tar of the upper directory's files and a list of
// the paths the container deleted (overlay's whiteouts). The target mounts the same image with a
// fresh upper directory and applies the diff through the merged view.
import { lstat, mkdir, mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../lib/errors.ts';
import { exec, run } from '../../lib/exec.ts';

export const DIFF_TAR = 'rootfs-diff.tar';
export const DELETED_FILES = 'deleted.files';

/** What the upper directory says changed: files to carry, and paths deleted (or made opaque). */
export interface UpperChanges {
  files: string[];
  deleted: string[];
}

/** overlayfs marks a deleted path with a 0/0 character device, and a replaced directory as opaque. */
async function isOpaque(p: string): Promise<boolean> {
  const r = await exec('getfattr', ['--only-values', '-h', '-n', 'trusted.overlay.opaque', p]);
  return r.code === 0 && r.stdout.trim() === 'y';
}

/** Walks an upper directory. */
export async function upperChanges(upper: string): Promise<UpperChanges> {
  const files: string[] = [];
  const deleted: string[] = [];
  const walk = async (dir: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const p = path.join(dir, name);
      const rel = path.relative(upper, p);
      const st = await lstat(p);
      if (st.isCharacterDevice() && st.rdev === 0) {
        deleted.push(rel);
        continue;
      }
      if (st.isDirectory() && (await isOpaque(p))) deleted.push(rel); // the image's contents go
      files.push(rel);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(upper);
  return { files, deleted };
}

/**
 * Tars listed trees into `file`, each `names` relative to its `dir`, without recursion: an upper
 * directory's files as upperChanges listed them (owners as numbers, extended attributes kept but
 * overlayfs's own bookkeeping: origin, impure, opaque), and any files made to go with them.
 */
async function tarListed(file: string, trees: { dir: string; names: string[] }[]): Promise<void> {
  const lists = await mkdtemp(`${file}.lists-`);
  try {
    const args = ['--create', '--file', file, '--no-recursion', '--xattrs', '--xattrs-include=*'].concat([
      '--xattrs-exclude=trusted.overlay.*',
      '--numeric-owner',
      '--null',
    ]);
    for (const [i, t] of trees.entries()) {
      const list = path.join(lists, String(i));
      await writeFile(list, t.names.map((f) => `${f}\0`).join(''), { mode: 0o600 });
      args.push('--directory', t.dir, '--files-from', list);
    }
    await run('tar', args, 'SnapshotFailed');
  } finally {
    await rm(lists, { recursive: true, force: true });
  }
}

/** Writes rootfs-diff.tar and deleted.files for an upper directory into `out`. */
export async function writeRootfsDiff(upper: string, out: string): Promise<UpperChanges> {
  const changes = await upperChanges(upper);
  await writeFile(path.join(out, DELETED_FILES), changes.deleted.map((d) => `${d}\n`).join(''), {
    mode: 0o600,
  });
  await tarListed(path.join(out, DIFF_TAR), [{ dir: upper, names: changes.files }]);
  return changes;
}

/**
 * Writes an upper directory as an OCI layer into `file`, the rootfs diff containerd writes and
 * applies: its deletions as whiteout files (`.wh.NAME`), an opaque directory marked `.wh..wh..opq`.
 */
export async function writeOciLayer(upper: string, file: string): Promise<void> {
  const changes = await upperChanges(upper);
  const kept = new Set(changes.files);
  // upperChanges lists an opaque directory among the deleted paths and the files both.
  const marks = changes.deleted.map((d) =>
    kept.has(d) ? path.join(d, '.wh..wh..opq') : path.join(path.dirname(d), `.wh.${path.basename(d)}`),
  );
  const markDir = await mkdtemp(`${file}.wh-`);
  try {
    for (const m of marks) {
      await mkdir(path.join(markDir, path.dirname(m)), { recursive: true });
      await writeFile(path.join(markDir, m), '');
    }
    await tarListed(file, [
      { dir: upper, names: changes.files },
      { dir: markDir, names: marks },
    ]);
  } finally {
    await rm(markDir, { recursive: true, force: true });
  }
}

/** A path from a diff that stays inside the root: relative, no "..", no empty part. Pure. */
export function safeRelative(p: string): boolean {
  const clean = p.replace(/\/+$/, '');
  return (
    clean !== '' &&
    !clean.startsWith('/') &&
    clean.split('/').every((s) => s !== '' && s !== '.' && s !== '..')
  );
}

/**
 * Checks a diff before anything is written: every deleted path and tar member stays inside the
 * root, and no link in the tar points outside it. Rejects with the first offending entry.
 */
export async function checkRootfsDiff(dir: string): Promise<void> {
  const deleted = (await readFile(path.join(dir, DELETED_FILES), 'utf8')).split('\n').filter(Boolean);
  for (const d of deleted)
    if (!safeRelative(d))
      throw new FerryError('StreamRejected', `deleted.files: ${JSON.stringify(d)} leaves the root`);
  await checkTreeTar(path.join(dir, DIFF_TAR), DIFF_TAR);
}

/**
 * A tree's tar, before it is unpacked anywhere: whole, every member inside the root it unpacks
 * into, and no hard link to anything outside it. Used for rootfs diffs and for archives' trees.
 */
export async function checkTreeTar(file: string, what: string): Promise<void> {
  const r = await exec('tar', ['--list', '--verbose', '--file', file]);
  if (r.code !== 0) throw new FerryError('StreamRejected', `${what} is missing or not a whole tar archive`);
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const name = memberName(line).replace(/^\.\//, '').replace(/\/$/, '');
    if (!name || name === '.') continue;
    if (!safeRelative(name))
      throw new FerryError('StreamRejected', `${what}: member ${JSON.stringify(name)} leaves the root`);
    const link = /^h/.test(line) ? / link to (.*)$/.exec(line)?.[1] : undefined;
    if (link !== undefined && !safeRelative(link.replace(/^\.\//, '')))
      throw new FerryError('StreamRejected', `${what}: hard link ${name} points outside the root`);
  }
}

/** GNU tar's listed-incremental mode: its record file when packing, /dev/null when unpacking. */
const incremental = (record?: string) => (record ? [`--listed-incremental=${record}`] : []);

/**
 * A whole tree as tar: owners as numbers, extended attributes kept. With `record` (GNU tar's
 * snapshot file, rewritten by tar), only what changed since the dump that record describes.
 */
export function packTreeTar(from: string, file: string, record?: string): Promise<string> {
  const args = ['--create', ...incremental(record), '--file', file, '--directory', from];
  return run('tar', [...args, '--xattrs', '--xattrs-include=*', '--numeric-owner', '.'], 'SnapshotFailed');
}

/**
 * Moves the time a listed-incremental record says its dump began `seconds` earlier. The next level
 * takes files changed since that time, by their timestamps, which the kernel keeps coarsely (a
 * jiffy or more behind the clock): a file written just after the dump began can carry a time
 * before it and be left out (seen here: 1 run in 40, a pod's emptyDir losing its last write). A
 * margin makes the next level send such files again. The record's first line is its format, then
 * the seconds and nanoseconds, NUL-terminated (GNU tar's format 2).
 */
export async function backdateRecord(record: string, seconds: number): Promise<void> {
  const text = await readFile(record);
  const head = text.indexOf(0x0a) + 1;
  const end = text.indexOf(0, head);
  const sec = Number(text.subarray(head, end).toString('ascii'));
  if (!text.subarray(0, head).toString('ascii').startsWith('GNU tar-') || !Number.isInteger(sec))
    throw new FerryError('SnapshotFailed', `${record} is not a GNU tar listed-incremental record`);
  const earlier = Buffer.from(String(sec - seconds), 'ascii');
  await writeFile(record, Buffer.concat([text.subarray(0, head), earlier, text.subarray(end)]), {
    mode: 0o600,
  });
}

/**
 * Unpacks a checked tree tar into `into`, owners, modes and extended attributes as they were. An
 * incremental level (`incrementalLevel`) also removes what its folders no longer list.
 */
export function unpackTreeTar(file: string, into: string, incrementalLevel = false): Promise<string> {
  const args = ['--extract', ...incremental(incrementalLevel ? '/dev/null' : undefined), '--file', file];
  const keep = ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--same-permissions'];
  return run('tar', [...args, '--directory', into, ...keep], 'SnapshotFailed');
}

/** The member name of a `tar -tv` line ("-rw-r--r-- 0/0 5 2026-01-01 00:00 a/b -> c"). Pure. */
export function memberName(line: string): string {
  const rest = line.split(/\s+/).slice(5).join(' ');
  return rest.replace(/ (->|link to) .*$/, '');
}

/**
 * Applies a checked diff to a freshly mounted rootfs (the same image below): removes the deleted
 * paths through the merged view, which leaves whiteouts in the new upper, then unpacks the files.
 */
export async function applyRootfsDiff(dir: string, rootfs: string): Promise<void> {
  await checkRootfsDiff(dir);
  const deleted = (await readFile(path.join(dir, DELETED_FILES), 'utf8')).split('\n').filter(Boolean);
  for (const d of deleted) await rm(path.join(rootfs, d), { recursive: true, force: true });
  await unpackTreeTar(path.join(dir, DIFF_TAR), rootfs);
}

/** Mounts an overlay of `lower` with `upper` and `work` at `merged`. */
export function mountOverlay(lower: string, upper: string, work: string, merged: string): Promise<string> {
  return run(
    'mount',
    ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged],
    'SnapshotFailed',
  );
}
