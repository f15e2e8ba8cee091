// Containers in a user namespace of their own (the default for `ferry run --image`): root inside
// is an unprivileged uid range outside, which is also what lets CRIU dump a workload that runs as
// another user inside, where root lacks CAP_SYS_RESOURCE (shared/environment.md). Each container
// on a node gets a range of its own; the range is kept in its spec, so a move restores it with the
// same one (the files it owns arrive owned by it).
import { chmod, lchown, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { AgentContext } from '../context.ts';
import { USERNS_FIRST, USERNS_SIZE } from './oci-spec.ts';

/** The first range no container on this node uses. */
export async function allocateRange(ctx: AgentContext): Promise<number> {
  const used = new Set<number>();
  for (const c of await readdir(ctx.layout.containers).catch(() => [] as string[])) {
    const raw = await readFile(path.join(ctx.layout.bundle(c), 'config.json'), 'utf8').catch(() => '{}');
    const spec = JSON.parse(raw) as { linux?: { uidMappings?: Array<{ hostID?: number }> } };
    const host = spec.linux?.uidMappings?.[0]?.hostID;
    if (typeof host === 'number') used.add(host);
  }
  let hostID = USERNS_FIRST;
  while (used.has(hostID)) hostID += USERNS_SIZE;
  return hostID;
}

/**
 * Lets the namespace's root reach `dir`: runc mounts the container's root and volumes as that
 * user, so every folder above them needs search permission for others (x only: nothing is listed
 * or read; files keep their 0600).
 */
export async function makeTraversable(dir: string): Promise<void> {
  const parts = path.resolve(dir).split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const p = `/${parts.slice(0, i).join('/')}`;
    const mode = (await stat(p)).mode & 0o7777;
    if (!(mode & 0o001)) await chmod(p, mode | 0o001);
  }
}

/** Gives a folder ferry made (a root or a volume) to the namespace's root. */
export function ownByRange(dir: string, hostID: number): Promise<void> {
  return lchown(dir, hostID, hostID);
}

/**
 * Lets the namespace's root read the checkpoint images CRIU restores its processes from (CRIU
 * opens some of them from inside the namespace): the folder and its files become that user's,
 * their modes unchanged, so nobody else can read them; the folders above become traversable.
 */
export async function shareImages(dir: string, hostID: number): Promise<void> {
  for (const name of await readdir(dir)) await lchown(path.join(dir, name), hostID, hostID);
  await lchown(dir, hostID, hostID);
  await makeTraversable(dir);
}
