// Whether a filesystem is full: the usual reason a write came out short or a tool failed without
// a word, so errors can say so.
import { statfs } from 'node:fs/promises';

/** True when the filesystem holding `dir` has no block left for ordinary writers. */
export async function noSpaceLeft(dir: string): Promise<boolean> {
  return (await statfs(dir).catch(() => undefined))?.bavail === 0;
}
