// What an OCI image says its container runs (its config: Entrypoint, Cmd, Env, WorkingDir, User),
// merged with what the user asked, as `podman run IMAGE [CMD…]` merges them; refused when the
// image is for another machine or names nothing to run. Pure.
import { z } from 'zod';
import { FerryError } from '../../lib/errors.ts';

const strings = z.array(z.string()).nullish();
export const ImageConfigSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  config: z
    .looseObject({
      Entrypoint: strings,
      Cmd: strings,
      Env: strings,
      WorkingDir: z.string().nullish(),
      User: z.string().nullish(),
      ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
    })
    .nullish(),
});
export type ImageConfig = z.infer<typeof ImageConfigSchema>;

export interface RunPlan {
  args: string[];
  env: string[];
  cwd: string;
  /** As the image names it ("", "uid", "uid:gid", "name", "name:group"): resolveUser reads it. */
  user: string;
  exposedPorts: string[];
}

/** Node's names for machines, as OCI images name them. */
export const ociArch = (nodeArch: string): string =>
  ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' })[nodeArch] ?? nodeArch;

/** The plan for running `image` here, with `command` (replacing Cmd) and `env` (over the image's). */
export function planRun(
  ref: string,
  raw: unknown,
  asked: { command?: string[]; env: string[] },
  arch: string,
): RunPlan {
  const parsed = ImageConfigSchema.safeParse(raw);
  if (!parsed.success)
    throw new FerryError('InvalidInput', `image ${ref}: its config is not an OCI image config`);
  const image = parsed.data;
  if (image.os !== 'linux' || image.architecture !== arch)
    throw new FerryError(
      'UnsupportedWorkload',
      `image ${ref} is for ${image.os}/${image.architecture}; this node runs linux/${arch}`,
    );
  const c = image.config ?? {};
  const args = [...(c.Entrypoint ?? []), ...(asked.command ?? c.Cmd ?? [])];
  if (!args.length)
    throw new FerryError(
      'InvalidInput',
      `image ${ref} has no Entrypoint or Cmd: give the command to run after --`,
    );
  const env = new Map<string, string>();
  for (const e of [...(c.Env ?? []), ...asked.env]) {
    const at = e.indexOf('=');
    if (at > 0) env.set(e.slice(0, at), e);
  }
  if (!env.has('PATH')) env.set('PATH', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  return {
    args,
    env: [...env.values()],
    cwd: c.WorkingDir || '/',
    user: c.User ?? '',
    exposedPorts: Object.keys(c.ExposedPorts ?? {}),
  };
}

/** The `name:x:id:gid…` line of /etc/passwd or /etc/group text with that name (or that id). */
function lookup(text: string, name: string, field = 0): { id: number; gid?: number } | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[field] === name && /^\d+$/.test(f[2] ?? ''))
      return { id: Number(f[2]), ...(/^\d+$/.test(f[3] ?? '') ? { gid: Number(f[3]) } : {}) };
  }
  return undefined;
}

/** The image's User as numbers, names looked up in the image's own /etc/passwd and /etc/group. */
export function resolveUser(
  ref: string,
  user: string,
  passwd: string,
  group: string,
): { uid: number; gid: number } {
  if (!user) return { uid: 0, gid: 0 };
  const [u = '', g] = user.split(':');
  // A number need not be in /etc/passwd; its group is, when it is.
  const found = /^\d+$/.test(u) ? { id: Number(u), gid: lookup(passwd, u, 2)?.gid } : lookup(passwd, u);
  if (!found)
    throw new FerryError('InvalidInput', `image ${ref}: user ${u} is not in the image's /etc/passwd`);
  let gid = found.gid ?? 0;
  if (g !== undefined) {
    const gg = /^\d+$/.test(g) ? Number(g) : lookup(group, g)?.id;
    if (gg === undefined)
      throw new FerryError('InvalidInput', `image ${ref}: group ${g} is not in the image's /etc/group`);
    gid = gg;
  }
  return { uid: found.id, gid };
}
