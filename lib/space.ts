// Space on disk: whether a filesystem is full (the usual reason a write came out short or a tool
// failed without a word, so errors can say so), and how much a folder holds.
import { readdir, stat, statfs } from 'node:fs/promises';
import path from 'node:path';

/** True when the filesystem holding `dir` has no block left for ordinary writers. */
export async function noSpaceLeft(dir: string): Promise<boolean> {
  return (await statfs(dir).catch(() => undefined))?.bavail === 0;
}

/** The bytes of the regular files under `dir`. */
export async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await stat(path.join(e.parentPath, e.name))).size;
  }
  return total;
}
