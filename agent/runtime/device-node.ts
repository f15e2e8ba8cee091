// A device node on this host as an OCI spec gives it to a container: its type and numbers, read
// from the node (Linux's encoding of st_rdev), under the path the container sees.
import { stat } from 'node:fs/promises';
import type { Device } from './oci-spec.ts';

/** The device at `hostPath`, as `containerPath` in a container; undefined when it is none. */
export async function deviceNode(hostPath: string, containerPath = hostPath): Promise<Device | undefined> {
  const st = await stat(hostPath, { bigint: true }).catch(() => undefined);
  if (!st || (!st.isCharacterDevice() && !st.isBlockDevice())) return undefined;
  // dev_t: the major's low 12 bits at 8, its high bits at 32; the minor's low 8 at 0, the rest at 12.
  const major = Number(((st.rdev >> 8n) & 0xfffn) | ((st.rdev >> 32n) & ~0xfffn));
  const minor = Number((st.rdev & 0xffn) | ((st.rdev >> 12n) & ~0xffn));
  return { path: containerPath, type: st.isCharacterDevice() ? 'c' : 'b', major, minor };
}
