// The OCI runtime spec for a workload container, modelled on `runc spec`'s defaults. Pure.
import { FERRY_OPT } from '../../lib/paths.ts';
import { ADDRESS_ANNOTATION } from './container-net.ts';

/** A container's environment when its spec gives none. */
export const DEFAULT_ENV = ['PATH=/bin:/usr/bin:/sbin', 'HOME=/'];

export interface Device {
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
}

export interface SpecInput {
  args: string[];
  /** Defaults: PATH and HOME; the working directory /; root. */
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number };
  cgroupsPath: string;
  hostname: string;
  /** Extra device nodes, created in the container and allowed by its device cgroup. */
  devices?: Device[];
  /** Host directory holding the container's self-service socket, mounted at /run/ferry. */
  selfDir?: string;
  /** Capabilities beyond the minimal set. */
  extraCaps?: string[];
  /** Node-local volumes: btrfs subvolumes in the bundle, bind-mounted at `destination`. */
  volumes?: Array<{ source: string; destination: string }>;
  /**
   * Its network: a namespace made beforehand (`path`), else one runc makes; and its address
   * (runtime/container-net.ts).
   */
  network?: { path?: string; address?: string };
  /** Files ferry wrote for what an engine (Podman) bound into the container (ENGINE_FILES). */
  engineFiles?: Array<{ source: string; destination: string }>;
  /** The cgroup file system at /sys/fs/cgroup, read-only (Podman mounts it). */
  cgroupMount?: boolean;
  /** The image reference it was started from. */
  image?: string;
  /** A user namespace of its own: root inside is `hostID` outside, for USERNS_SIZE ids. */
  userns?: { hostID: number };
  /** Paths masked or made read-only besides ferry's own. */
  masked?: string[];
  readonly?: string[];
}

export const SELF_MOUNT = '/run/ferry';
/** User namespaces: each container's root is a range of this size, from this uid (runtime/userns.ts). */
export const USERNS_FIRST = 131072;
export const USERNS_SIZE = 65536;
/** The image a container was started from, kept in its spec so it moves with it (`ferry ps`). */
export const IMAGE_ANNOTATION = 'ferry.dev/image';

/** Installed by scripts/setup.sh. */
export const CRIU_CONFIG = `${FERRY_OPT}/etc/criu.conf`;

/** ferry's default capabilities, the only ones a restored container may hold (restore-spec.ts). */
export const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
/** What ferry's feature test program (/bin/features) also gets: it mounts a tmpfs of its own. */
export const FEATURES_CAPS = ['CAP_SYS_ADMIN'];

/**
 * Podman's default capabilities. A Podman archive may ask for them (restore-spec.ts); ferry's spec
 * still grants only CAPS.
 */
export const ENGINE_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_NET_BIND_SERVICE',
  'CAP_SETFCAP',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
];

/**
 * What a container engine binds into each container from its own per-container folder. A restored
 * container gets files ferry writes in its bundle there (runtime/engine-files.ts), never the host
 * paths an archive names.
 */
export const ENGINE_FILES = [
  '/etc/hostname',
  '/etc/hosts',
  '/etc/resolv.conf',
  '/run/.containerenv',
  '/dev/shm',
];

export const MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/proc/scsi',
];
export const READONLY_PATHS: readonly string[] = [
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

/** The mounts every ferry container has, made by ferry (never taken from a spec that crossed a boundary). */
export const STANDARD_MOUNTS: ReadonlyArray<{ destination: string; type: string } & Record<string, unknown>> =
  [
    { destination: '/proc', type: 'proc', source: 'proc' },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    {
      destination: '/dev/mqueue',
      type: 'mqueue',
      source: 'mqueue',
      options: ['nosuid', 'noexec', 'nodev'],
    },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];

/**
 * The standard mounts, the node-local volumes bound in, the self-service socket's folder, and what
 * ferry remakes for an engine's container.
 */
function specMounts(input: SpecInput): Array<Record<string, unknown>> {
  const engine = input.engineFiles ?? [];
  const ownShm = engine.some((f) => f.destination === '/dev/shm');
  return [
    // In a user namespace sysfs cannot be mounted (the namespace does not own the network one),
    // and CRIU cannot restore the host's bound in instead: no /sys.
    ...STANDARD_MOUNTS.filter(
      (m) => !(ownShm && m.destination === '/dev/shm') && !(input.userns && m.destination === '/sys'),
    ),
    ...(input.cgroupMount
      ? [
          {
            destination: '/sys/fs/cgroup',
            type: 'cgroup',
            source: 'cgroup',
            options: ['rprivate', 'nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
          },
        ]
      : []),
    ...engine.map((f) => ({
      destination: f.destination,
      type: 'bind',
      source: f.source,
      options: ['bind', 'rprivate', ...(f.destination === '/dev/shm' ? ['nosuid', 'noexec', 'nodev'] : [])],
    })),
    ...(input.volumes ?? []).map((v) => ({
      destination: v.destination,
      type: 'bind',
      source: v.source,
      options: ['rbind', 'rw'],
    })),
    ...(input.selfDir
      ? [{ destination: SELF_MOUNT, type: 'bind', source: input.selfDir, options: ['rbind', 'rw'] }]
      : []),
  ];
}

/** The container's cgroup, devices, namespaces (its own network one when it has an address), masks. */
function specLinux(input: SpecInput): Record<string, unknown> {
  return {
    cgroupsPath: input.cgroupsPath,
    devices: (input.devices ?? []).map((d) => ({ ...d, fileMode: 0o600, uid: 0, gid: 0 })),
    resources: {
      devices: [
        { allow: false, access: 'rwm' },
        ...(input.devices ?? []).map((d) => ({
          allow: true,
          type: d.type,
          major: d.major,
          minor: d.minor,
          access: 'rwm',
        })),
      ],
    },
    namespaces: [
      { type: 'pid' },
      input.network?.path ? { type: 'network', path: input.network.path } : { type: 'network' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      ...(input.userns ? [{ type: 'user' }] : []),
    ],
    ...(input.userns
      ? {
          uidMappings: [{ containerID: 0, hostID: input.userns.hostID, size: USERNS_SIZE }],
          gidMappings: [{ containerID: 0, hostID: input.userns.hostID, size: USERNS_SIZE }],
        }
      : {}),
    maskedPaths: [...new Set([...MASKED_PATHS, ...(input.masked ?? [])])],
    readonlyPaths: [...new Set([...READONLY_PATHS, ...(input.readonly ?? [])])],
  };
}

export function buildOciSpec(input: SpecInput): Record<string, unknown> {
  const caps = [...CAPS, ...(input.extraCaps ?? [])];
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: input.user ?? { uid: 0, gid: 0 },
      args: input.args,
      env: input.env ?? DEFAULT_ENV,
      cwd: input.cwd ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
      // Within the host's hard limit: this kernel cannot raise rlimits (no CAP_SYS_RESOURCE).
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: input.hostname,
    // runc hands this file to CRIU: it adds ferry's action script, which brings a restored network
    // namespace's loopback up before CRIU reconnects its sockets (scripts/criu-action.sh).
    annotations: {
      'org.criu.config': CRIU_CONFIG,
      ...(input.network?.address ? { [ADDRESS_ANNOTATION]: input.network.address } : {}),
      ...(input.image ? { [IMAGE_ANNOTATION]: input.image } : {}),
    },
    mounts: specMounts(input),
    linux: specLinux(input),
  };
}

/**
 * The volume a spec mount is, by its source: ferry's `…/containers/<container>/volumes/<name>`, or
 * a Podman named volume's `…/volumes/<name>/_data` (how ferry's archives name them too). Pure.
 */
export function volumeName(m: Record<string, unknown>): string | undefined {
  if (m.type !== 'bind' || typeof m.source !== 'string') return undefined;
  return (
    /\/containers\/[^/]+\/volumes\/([a-z0-9-]+)$/.exec(m.source)?.[1] ??
    /\/volumes\/([a-z0-9-]+)\/_data$/.exec(m.source)?.[1]
  );
}

/** The node-local volumes of a spec: name and where the container sees it. Pure. */
export function specVolumes(spec: Record<string, unknown>): Array<{ name: string; destination: string }> {
  return ((spec.mounts ?? []) as Array<Record<string, unknown>>).flatMap((m) => {
    const name = volumeName(m);
    return name ? [{ name, destination: String(m.destination) }] : [];
  });
}
