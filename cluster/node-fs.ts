// Each simulated node's storage: a btrfs filesystem on a sparse loop file (containers, snapshots,
// received streams) and a private tmpfs for CRIU images, both mode 0700.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { exec, run } from '../lib/exec.ts';
import { fsLayout } from '../lib/paths.ts';

export async function isMounted(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((l) => l.split(' ')[1] === dir);
}

export async function ensureBtrfs(disk: string, mountPoint: string, sizeGiB: number): Promise<void> {
  await mkdir(mountPoint, { recursive: true, mode: 0o700 });
  if (!(await isMounted(mountPoint))) {
    if ((await exec('truncate', ['-s', `${sizeGiB}G`, disk])).code !== 0)
      throw new Error(`cannot create ${disk}`);
    const probe = await exec('blkid', ['-o', 'value', '-s', 'TYPE', disk]);
    if (probe.stdout.trim() !== 'btrfs') await run('mkfs.btrfs', ['-q', '-f', disk]);
    await run('mount', ['-o', 'loop', disk, mountPoint]);
  }
  await run('chmod', ['0700', mountPoint]);
  const layout = fsLayout(mountPoint, '/unused');
  for (const d of [layout.containers, layout.snapshots, `${mountPoint}/incoming`])
    await mkdir(d, { recursive: true, mode: 0o700 });
}

export async function ensureTmpfs(dir: string, sizeGiB: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!(await isMounted(dir)))
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeGiB}g,mode=0700`, 'ferry-images', dir]);
}

export async function unmount(dir: string): Promise<void> {
  if (await isMounted(dir)) await run('umount', [dir]);
  await rm(dir, { recursive: true, force: true });
}
