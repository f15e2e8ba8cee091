// The per-container files an engine (Podman) binds into its containers, remade by ferry in the
// bundle of a container restored from such an archive: the archive names where they were on its
// host, and those paths are never used (restore-spec.ts). CRIU restores the container's mounts
// from its images, so each must be there again, with ferry's own content.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const ENGINE_DIR = 'engine';
/** Where a restored container's /dev/shm lives: a folder in its bundle. */
export const shmDir = (bundle: string): string => path.join(bundle, ENGINE_DIR, 'shm');

const contents = (hostname: string): Record<string, string> => ({
  '/etc/hostname': `${hostname}\n`,
  '/etc/hosts': `127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t${hostname}\n`,
  // The container gets a network of ferry's, not the engine's: no name servers are known here.
  '/etc/resolv.conf': '',
  '/run/.containerenv': 'engine="ferry"\n',
});

/** Writes the files for `destinations` in the bundle; returns the mounts that bind them in. */
export async function writeEngineFiles(
  bundle: string,
  destinations: string[],
  hostname: string,
): Promise<Array<{ source: string; destination: string }>> {
  if (!destinations.length) return [];
  await mkdir(path.join(bundle, ENGINE_DIR), { recursive: true, mode: 0o700 });
  const text = contents(hostname);
  const out: Array<{ source: string; destination: string }> = [];
  for (const destination of destinations) {
    if (destination === '/dev/shm') {
      await mkdir(shmDir(bundle), { recursive: true, mode: 0o1777 });
      out.push({ source: shmDir(bundle), destination });
      continue;
    }
    const source = path.join(bundle, ENGINE_DIR, path.basename(destination));
    await writeFile(source, text[destination] ?? '', { mode: 0o644 });
    out.push({ source, destination });
  }
  return out;
}
