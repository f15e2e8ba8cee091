// The CRIU log of a failed dump or restore, kept where the rollback does not remove it (it removes
// the migration's folders), so the error can point to it. The newest 50 are kept.
import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';

const KEEP = 50;

/** Copies `logFile` (images/UID/work/NAME.log) to `dir` as UID-NAME.log; resolves to the copy, if made. */
export async function keepLog(logFile: string, dir: string): Promise<string | undefined> {
  const uid = path.basename(path.dirname(path.dirname(logFile)));
  const copy = path.join(dir, `${uid}-${path.basename(logFile)}`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await copyFile(logFile, copy);
  } catch {
    return undefined; // no log to keep (CRIU never started), or no room: the error still says why
  }
  const kept = await readdir(dir).catch(() => [] as string[]);
  if (kept.length > KEEP) {
    const aged = await Promise.all(
      kept.map(async (f) => ({ f, t: (await stat(path.join(dir, f))).mtimeMs })),
    );
    for (const { f } of aged.sort((a, b) => b.t - a.t).slice(KEEP))
      await rm(path.join(dir, f), { force: true });
  }
  return copy;
}
