// btrfs subvolumes, read-only snapshots and send/receive streams, through btrfs-progs.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { access } from 'node:fs/promises';
import { exec, run } from '../../lib/exec.ts';

export async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

export async function createSubvolume(p: string): Promise<void> {
  await run('btrfs', ['subvolume', 'create', p], 'SnapshotFailed');
}

/** A snapshot of `src` at `dest`; read-only ones can be sent. Idempotent when dest already exists. */
export async function snapshot(src: string, dest: string, opts: { readonly: boolean }): Promise<void> {
  if (await exists(dest)) return;
  await run(
    'btrfs',
    ['subvolume', 'snapshot', ...(opts.readonly ? ['-r'] : []), src, dest],
    'SnapshotFailed',
  );
}

/** Deletes a subvolume if it exists. */
export async function deleteSubvolume(p: string): Promise<void> {
  if (!(await exists(p))) return;
  await run('btrfs', ['subvolume', 'delete', p], 'SnapshotFailed');
}

/** `btrfs send [-p parent] snap`: the caller reads stdout and must check the exit. */
export function sendStream(snap: string, parent?: string): ChildProcessWithoutNullStreams {
  return spawn('btrfs', ['send', '-q', ...(parent ? ['-p', parent] : []), snap], { stdio: 'pipe' });
}

/** `btrfs receive -e dir`: the caller writes the stream to stdin. */
export function receiveStream(dir: string): ChildProcessWithoutNullStreams {
  return spawn('btrfs', ['receive', '-e', dir], { stdio: 'pipe' });
}

/** Free bytes on the filesystem holding `p`, as btrfs reports them (statfs is close enough here). */
export async function freeBytes(p: string): Promise<number> {
  const r = await exec('df', ['--output=avail', '-B1', p], { errorCode: 'Internal' });
  return Number(r.stdout.trim().split('\n').pop());
}
