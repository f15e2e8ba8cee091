// The spec a container is restored with, when its spec crossed a boundary (an imported archive's
// spec.dump, a migration's config.json): never the file taken whole. Its facts are read (what the
// process runs, as whom, where; its node-local volumes and address) and checked, and the spec ferry
// writes is ferry's own, built from them (oci-spec.ts): the root is always the bundle's rootfs, the
// mounts only those ferry makes, no devices but NVIDIA's GPU nodes (whose numbers the node looks up
// in its own /dev), no hooks, host namespaces or namespace paths, no capability ferry would not
// grant. Anything else is refused naming the field, before anything is
// unpacked or made. Pure.
//
// A Podman archive (annotation io.container.manager=libpod) is read the same way, with what every
// Podman container has and ferry remakes on its own node: its root in containers-storage (never
// used), the per-container files Podman binds in (ENGINE_FILES: ferry writes its own, never the
// host's named in the spec), its cgroup mount, a network namespace of its engine's (ferry makes one
// with loopback only), Podman's default capabilities (ferry's spec grants its own three), its
// seccomp filter (CRIU restores each process's from its images) and its ping sysctl.
import { FerryError } from '../../lib/errors.ts';
import { isGpuDevice } from '../gpu/gpu-rules.ts';
import { ADDRESS_ANNOTATION } from './container-net.ts';
import {
  CAPS,
  ENGINE_CAPS,
  ENGINE_FILES,
  FEATURES_CAPS,
  IMAGE_ANNOTATION,
  MASKED_PATHS,
  READONLY_PATHS,
  SELF_MOUNT,
  STANDARD_MOUNTS,
  USERNS_FIRST,
  USERNS_SIZE,
  volumeName,
} from './oci-spec.ts';

/** The facts of a spec ferry restores from; everything else is ferry's. */
export interface SpecFacts {
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number };
  hostname: string;
  /** Beyond ferry's default capabilities (its feature test program's CAP_SYS_ADMIN). */
  extraCaps: string[];
  volumes: Array<{ name: string; destination: string }>;
  address?: string;
  /** The image reference it was started from (ferry's annotation). */
  image?: string;
  /** Its user namespace's range: root inside is `hostID` outside (ferry's shape only). */
  userns?: { hostID: number };
  /** Podman wrote it (its root is an image below a diff, not a whole tree). */
  libpod: boolean;
  /** The engine's per-container files (ENGINE_FILES) it had bound in: ferry binds its own there. */
  engineFiles: string[];
  /** It had the cgroup file system mounted at /sys/fs/cgroup. */
  cgroupMount: boolean;
  /** Its network namespace was joined by path, so CRIU dumped it as external: the restore joins one. */
  joinsNetns: boolean;
  /** Paths masked or made read-only beyond ferry's own (only ever more restrictive). */
  masked: string[];
  readonly: string[];
  /** NVIDIA device nodes it had (/dev/nvidia0, /dev/nvidiactl, …): a GPU workload. */
  gpuDevices: string[];
}

/** The manager Podman names in its specs' annotations. */
const LIBPOD = 'libpod';
/** Where a Podman container's root was on its host: read, never used. */
const PODMAN_ROOT = /^(\/[\w.-]+)+\/overlay\/[0-9a-f]{64}\/merged$/;
const ENGINE_SYSCTLS = new Set(['net.ipv4.ping_group_range']);
/** Masked and read-only paths: under /proc or /sys, no climbing. */
const KERNEL_PATH = /^\/(proc|sys)(\/[\w.:-]+)+$/;

/** The largest spec read at all: ferry's own are a few KiB. */
export const MAX_SPEC_BYTES = 256 * 1024;

const CAP_SETS = ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'];
const NAMESPACES_REQUIRED = ['pid', 'ipc', 'uts', 'mount', 'network'];
const NAMESPACES_ALLOWED = new Set([...NAMESPACES_REQUIRED, 'cgroup', 'user']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown, max: number): v is string[] =>
  Array.isArray(v) && v.length <= max && v.every((s) => typeof s === 'string' && s.length <= 32 * 1024);
const nonEmpty = (v: unknown): boolean =>
  v !== undefined && v !== null && !(Array.isArray(v) && !v.length) && !(isObj(v) && !Object.keys(v).length);

/**
 * The device nodes a spec gives its container: NVIDIA's GPU nodes only (character devices), and
 * device cgroup rules allowing exactly those. The numbers are read for the check, never used: the
 * node restoring it looks its own up.
 */
function gpuDevicesOf(
  linux: Obj,
  refuse: (field: string, why: string) => never,
): Array<{ path: string; major: number; minor: number }> {
  const list = Array.isArray(linux.devices) ? linux.devices : [];
  if (list.length > 16) refuse('linux.devices', `${list.length} devices: a GPU workload has a few`);
  const devices = list.map((d, i) => {
    if (!isObj(d) || typeof d.path !== 'string' || d.type !== 'c' || !isGpuDevice(d.path))
      return refuse(
        `linux.devices[${i}]`,
        `${isObj(d) ? String(d.path) : 'not a device'}: a restored container gets no device nodes but NVIDIA's GPUs`,
      );
    return { path: d.path, major: Number(d.major), minor: Number(d.minor) };
  });
  const res = isObj(linux.resources) ? linux.resources : {};
  const rules = Array.isArray(res.devices) ? res.devices : [];
  rules.forEach((r, i) => {
    if (!isObj(r) || r.allow !== true) return;
    const own = devices.some((d) => r.type === 'c' && r.major === d.major && r.minor === d.minor);
    if (!own)
      refuse(
        `linux.resources.devices[${i}]`,
        `allows ${String(r.type)} ${String(r.major)}:${String(r.minor)}: a restored container is allowed only its GPU nodes`,
      );
  });
  return devices;
}

/**
 * A user namespace as ferry makes them, or none: one range for users and groups alike, root inside
 * mapped to an unprivileged range outside, never to the host's own ids.
 */
function userRange(
  linux: Obj,
  hasUserNs: boolean,
  refuse: (field: string, why: string) => never,
): { hostID: number } | undefined {
  const uid = linux.uidMappings;
  const gid = linux.gidMappings;
  if (!hasUserNs) {
    if (nonEmpty(uid)) refuse('linux.uidMappings', 'a mapping with no user namespace');
    if (nonEmpty(gid)) refuse('linux.gidMappings', 'a mapping with no user namespace');
    return undefined;
  }
  const one = (v: unknown, field: string): number => {
    const m = Array.isArray(v) && v.length === 1 && isObj(v[0]) ? v[0] : undefined;
    const host = m?.hostID;
    if (
      !m ||
      m.containerID !== 0 ||
      m.size !== USERNS_SIZE ||
      !Number.isInteger(host) ||
      (host as number) < USERNS_FIRST ||
      (host as number) + USERNS_SIZE > 2 ** 32 - 1
    )
      refuse(
        field,
        `a user namespace maps root to one range of ${USERNS_SIZE} ids from ${USERNS_FIRST} up, never the host's own`,
      );
    return host as number;
  };
  const hostID = one(uid, 'linux.uidMappings');
  if (one(gid, 'linux.gidMappings') !== hostID) refuse('linux.gidMappings', 'the same range as the users');
  return { hostID };
}

/** Reads and checks a spec's facts; `where` names the file in the refusal (spec.dump, config.json). */
export function specFacts(raw: string, where: string): SpecFacts {
  const refuse = (field: string, why: string): never => {
    throw new FerryError('StreamRejected', `${where}: ${field}: ${why}`);
  };
  if (Buffer.byteLength(raw) > MAX_SPEC_BYTES)
    refuse(
      '(whole file)',
      `${Buffer.byteLength(raw)} bytes, more than the ${MAX_SPEC_BYTES} a runtime spec needs`,
    );
  let spec: unknown;
  try {
    spec = JSON.parse(raw);
  } catch {
    return refuse('(whole file)', 'not JSON');
  }
  if (!isObj(spec) || typeof spec.ociVersion !== 'string')
    return refuse('ociVersion', 'not an OCI runtime spec');
  if (nonEmpty(spec.hooks)) refuse('hooks', 'a restored container runs no hooks');
  const annotations = isObj(spec.annotations) ? spec.annotations : {};
  const libpod = annotations['io.container.manager'] === LIBPOD;
  const root = isObj(spec.root) ? spec.root : {};
  const podmanRoot = libpod && typeof root.path === 'string' && PODMAN_ROOT.test(root.path);
  if (root.path !== 'rootfs' && !podmanRoot)
    refuse(
      'root.path',
      `${JSON.stringify(root.path)}: a restored container's root is always its own bundle's rootfs`,
    );

  const p = isObj(spec.process) ? spec.process : refuse('process', 'missing');
  if (p.terminal === true) refuse('process.terminal', 'ferry restores no terminals');
  if (!strings(p.args, 256) || !p.args.length) refuse('process.args', 'a list of strings is required');
  if (p.env !== undefined && !strings(p.env, 1024)) refuse('process.env', 'a list of strings');
  if (p.cwd !== undefined && (typeof p.cwd !== 'string' || !p.cwd.startsWith('/')))
    refuse('process.cwd', 'an absolute path');
  const user = isObj(p.user) ? p.user : {};
  const id = (v: unknown) =>
    v === undefined ? 0 : Number.isInteger(v) && (v as number) >= 0 ? (v as number) : -1;
  if (id(user.uid) < 0 || id(user.gid) < 0) refuse('process.user', 'uid and gid are numbers');
  if (nonEmpty(user.additionalGids)) refuse('process.user.additionalGids', 'ferry grants no extra groups');
  const args = p.args as string[];
  const granted = new Set([
    ...CAPS,
    ...(args[0] === '/bin/features' ? FEATURES_CAPS : []),
    ...(libpod ? ENGINE_CAPS : []),
  ]);
  const caps = isObj(p.capabilities) ? p.capabilities : {};
  const asked = new Set<string>();
  for (const [set, list] of Object.entries(caps)) {
    // The set's name goes into the refusal only once it is known to be one.
    if (!CAP_SETS.includes(set))
      refuse('process.capabilities', `${JSON.stringify(set).slice(0, 40)} is not a capability set`);
    if (!strings(list, 64)) refuse(`process.capabilities.${set}`, 'a list of capability names');
    for (const c of list as string[]) {
      if (!granted.has(c))
        refuse(`process.capabilities.${set}`, `${c} is wider than ferry grants (${[...granted].join(', ')})`);
      asked.add(c);
    }
  }

  const linux = isObj(spec.linux) ? spec.linux : {};
  const gpuDevices = gpuDevicesOf(linux, refuse);
  const tolerated = libpod ? ['seccomp'] : [];
  if (libpod && isObj(linux.sysctl) && Object.keys(linux.sysctl).every((k) => ENGINE_SYSCTLS.has(k)))
    tolerated.push('sysctl');
  for (const f of ['sysctl', 'seccomp', 'intelRdt', 'personality'] as const)
    if (nonEmpty(linux[f]) && !tolerated.includes(f))
      refuse(`linux.${f}`, 'ferry sets none on a restored container');
  const beyond = (field: 'maskedPaths' | 'readonlyPaths', own: readonly string[]): string[] => {
    const list = linux[field] ?? [];
    if (!strings(list, 64)) return refuse(`linux.${field}`, 'a list of paths');
    for (const p of list)
      if (!KERNEL_PATH.test(p) || p.split('/').includes('..'))
        refuse(`linux.${field}`, `${JSON.stringify(p)}: only paths under /proc or /sys are masked`);
    return list.filter((p) => !own.includes(p));
  };
  const masked = beyond('maskedPaths', MASKED_PATHS);
  const readonly = beyond('readonlyPaths', READONLY_PATHS);
  const namespaces = Array.isArray(linux.namespaces) ? linux.namespaces : [];
  const types = new Set<string>();
  let joinsNetns = false;
  namespaces.forEach((n, i) => {
    if (!isObj(n) || typeof n.type !== 'string') return refuse(`linux.namespaces[${i}]`, 'not a namespace');
    if (!NAMESPACES_ALLOWED.has(n.type)) refuse(`linux.namespaces[${i}]`, `${n.type}: ferry restores none`);
    // The network namespace is ferry's to make on this node; any other named one is a host's.
    if (n.path !== undefined && n.type !== 'network')
      refuse(
        `linux.namespaces[${i}].path`,
        `${String(n.path)}: a restored container joins no existing ${n.type} namespace`,
      );
    if (n.path !== undefined) joinsNetns = true;
    types.add(n.type);
  });
  for (const t of NAMESPACES_REQUIRED)
    if (!types.has(t)) refuse('linux.namespaces', `no ${t} namespace: it would share the host's`);
  const userns = userRange(linux, types.has('user'), refuse);

  const volumes: SpecFacts['volumes'] = [];
  const engineFiles: string[] = [];
  let cgroupMount = false;
  const standard = new Map(STANDARD_MOUNTS.map((m) => [m.destination, m.type]));
  const mounts = Array.isArray(spec.mounts) ? spec.mounts : [];
  mounts.forEach((m, i) => {
    if (!isObj(m) || typeof m.destination !== 'string') return refuse(`mounts[${i}]`, 'not a mount');
    if (standard.get(m.destination) === m.type) return; // ferry makes its own
    if (m.destination === SELF_MOUNT && m.type === 'bind') return; // this node's self-service folder
    if (m.destination === '/sys/fs/cgroup' && m.type === 'cgroup') return void (cgroupMount = true);
    // An engine's file (the spec names where it was on its host): ferry writes its own.
    if (ENGINE_FILES.includes(m.destination) && m.type === 'bind')
      return void engineFiles.push(m.destination);
    const vol = volumeName(m);
    if (vol && m.destination.startsWith('/') && !m.destination.split('/').includes('..'))
      return void volumes.push({ name: vol, destination: m.destination });
    refuse(
      `mounts[${i}]`,
      `${String(m.type)} ${String(m.source)} at ${m.destination}: a restored container gets no host path or file system ferry does not make`,
    );
  });

  const address = annotations[ADDRESS_ANNOTATION];
  if (address !== undefined && (typeof address !== 'string' || !/^\d{1,3}(\.\d{1,3}){3}$/.test(address)))
    refuse(`annotations.${ADDRESS_ANNOTATION}`, 'an IPv4 address');
  const image = annotations[IMAGE_ANNOTATION];
  if (image !== undefined && (typeof image !== 'string' || !/^[\x21-\x7e]{1,600}$/.test(image)))
    refuse(`annotations.${IMAGE_ANNOTATION}`, 'an image reference');
  const hostname = spec.hostname ?? 'ferry';
  if (typeof hostname !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(hostname))
    refuse('hostname', 'a host name');

  return {
    args,
    env: (p.env as string[] | undefined) ?? [],
    cwd: (p.cwd as string | undefined) ?? '/',
    user: { uid: id(user.uid), gid: id(user.gid) },
    hostname: hostname as string,
    // Podman's defaults are accepted, not granted: ferry's spec keeps its own three.
    extraCaps: [...asked].filter((c) => !CAPS.includes(c) && !ENGINE_CAPS.includes(c)),
    volumes,
    libpod,
    engineFiles,
    cgroupMount,
    joinsNetns,
    masked,
    readonly,
    gpuDevices: gpuDevices.map((d) => d.path),
    ...(typeof address === 'string' ? { address } : {}),
    ...(typeof image === 'string' ? { image } : {}),
    ...(userns ? { userns } : {}),
  };
}
