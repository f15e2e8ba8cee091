// What filesystem a path is on, as the kernel says: it decides which volume driver moves it.
import { exec } from '../../lib/exec.ts';

/** `stat -f -c %T` of a path: btrfs, overlayfs, ext2/ext3, xfs, tmpfs… */
export async function filesystemOf(p: string): Promise<string> {
  return (await exec('stat', ['-f', '-c', '%T', p], { errorCode: 'Internal' })).stdout.trim();
}
