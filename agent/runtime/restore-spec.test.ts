// A spec that crossed a boundary (an archive's spec.dump, a migration's config.json) is read for
// its facts and never taken whole: ferry's own specs round-trip; hostile ones are refused naming
// the field; fuzzed ones never crash the reader and never come out wider than ferry's own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { FerryError } from '../../lib/errors.ts';
import { buildOciSpec, CAPS, type SpecInput } from './oci-spec.ts';
import { MAX_SPEC_BYTES, specFacts, type SpecFacts } from './restore-spec.ts';

// Specs are edited freely here, as a hostile archive's author would: any shape goes.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

const NODE = {
  cgroupsPath: '/ferry-test/node2/web',
  selfDir: '/run/ferry/test/node2/self/web',
};
const input: SpecInput = {
  ...NODE,
  args: ['/bin/workload', '--mem-mib', '16', '--dir', '/data'],
  hostname: 'web',
  volumes: [
    { source: '/var/lib/ferry/test/nodes/node1/fs/containers/web/volumes/data', destination: '/data' },
  ],
  network: { path: '/run/netns/ferry-test-web', address: '10.78.0.50' },
  image: 'oci-archive:/var/lib/ferry/images/redis.tar',
};
const valid = buildOciSpec(input);

const ENGINE_SOURCE = '/var/lib/ferry/test/nodes/node2/fs/containers/web/engine/';

/** What a target builds from the facts, on its node (as writeRestoreSpec does). */
const rebuild = (f: SpecFacts) =>
  buildOciSpec({
    ...NODE,
    args: f.args,
    env: f.env,
    cwd: f.cwd,
    user: f.user,
    hostname: f.hostname,
    extraCaps: f.extraCaps,
    volumes: f.volumes.map((v) => ({ source: input.volumes![0]!.source, destination: v.destination })),
    ...(f.address || f.joinsNetns ? { network: { path: input.network!.path, address: f.address } } : {}),
    engineFiles: f.engineFiles.map((d) => ({ source: ENGINE_SOURCE + d.slice(1), destination: d })),
    ...(f.userns ? { userns: f.userns } : {}),
    cgroupMount: f.cgroupMount,
    ...(f.image ? { image: f.image } : {}),
    masked: f.masked,
    readonly: f.readonly,
  });

/** The spec.dump Podman 4.3.1 wrote for a busybox container (its seccomp rules shortened). */
const podman = JSON.parse(
  readFileSync(new URL('../../test/fixtures/podman-4.3.1-spec.json', import.meta.url), 'utf8'),
) as Loose;

test('a container in a user namespace of its own comes back with the same range, and no /sys', () => {
  const inNs = buildOciSpec({ ...input, userns: { hostID: 196608 } });
  const f = specFacts(JSON.stringify(inNs), 'config.json');
  assert.deepEqual(f.userns, { hostID: 196608 });
  assert.deepEqual(rebuild(f), inNs);
  assert.ok(!(inNs.mounts as Array<{ destination: string }>).some((m) => m.destination === '/sys'));
});

test('ferry’s own spec comes back the same from its facts', () => {
  const f = specFacts(JSON.stringify(valid), 'config.json');
  assert.deepEqual(f.volumes, [{ name: 'data', destination: '/data' }]);
  assert.equal(f.address, '10.78.0.50');
  assert.deepEqual(rebuild(f), valid);
  const features = buildOciSpec({
    ...input,
    args: ['/bin/features', '--dir', '/data'],
    extraCaps: ['CAP_SYS_ADMIN'],
  });
  assert.deepEqual(specFacts(JSON.stringify(features), 'config.json').extraCaps, ['CAP_SYS_ADMIN']);
});

const hostile: Array<[string, (s: Loose) => void, RegExp]> = [
  ['root /', (s) => (s.root.path = '/'), /^spec\.dump: root\.path: "\/": .*its own bundle's rootfs/],
  ['root outside the bundle', (s) => (s.root.path = '../../other/rootfs'), /^spec\.dump: root\.path: /],
  [
    'a Podman root in containers-storage',
    (s) => (s.root.path = '/var/lib/containers/storage/overlay/abc/merged'),
    /^spec\.dump: root\.path: /,
  ],
  [
    'a bind of /etc',
    (s) => s.mounts.push({ destination: '/host-etc', type: 'bind', source: '/etc', options: ['rbind'] }),
    /^spec\.dump: mounts\[\d+\]: bind \/etc at \/host-etc: .*no host path/,
  ],
  [
    'a docker.sock-like bind',
    (s) =>
      s.mounts.push({
        destination: '/var/run/docker.sock',
        type: 'bind',
        source: '/run/containerd/containerd.sock',
      }),
    /^spec\.dump: mounts\[\d+\]: bind \/run\/containerd\/containerd\.sock/,
  ],
  [
    'a volume-looking bind whose destination climbs',
    (s) => s.mounts.push({ destination: '/../etc', type: 'bind', source: '/x/containers/c/volumes/v' }),
    /^spec\.dump: mounts\[\d+\]/,
  ],
  [
    'a device',
    (s) => (s.linux.devices = [{ path: '/dev/sda', type: 'b', major: 8, minor: 0 }]),
    /^spec\.dump: linux\.devices\[0\]: \/dev\/sda: a restored container gets no device nodes but NVIDIA's GPUs/,
  ],
  [
    'a device allowed in the cgroup',
    (s) => s.linux.resources.devices.push({ allow: true, access: 'rwm' }),
    /^spec\.dump: linux\.resources\.devices\[\d+\]: allows undefined undefined:undefined/,
  ],
  [
    'an NVIDIA name on a block device',
    (s) => (s.linux.devices = [{ path: '/dev/nvidia0', type: 'b', major: 8, minor: 0 }]),
    /^spec\.dump: linux\.devices\[0\]: /,
  ],
  [
    'a GPU node and a rule allowing another device',
    (s) => {
      s.linux.devices = [{ path: '/dev/nvidia0', type: 'c', major: 195, minor: 0 }];
      s.linux.resources.devices.push({ allow: true, type: 'c', major: 8, minor: 0, access: 'rwm' });
    },
    /^spec\.dump: linux\.resources\.devices\[\d+\]: allows c 8:0/,
  ],
  [
    'the host’s PID namespace',
    (s) => (s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== 'pid')),
    /^spec\.dump: linux\.namespaces: no pid namespace: it would share the host's/,
  ],
  [
    'a namespace path',
    (s) => (s.linux.namespaces[0].path = '/proc/1/ns/pid'),
    /^spec\.dump: linux\.namespaces\[0\]\.path: \/proc\/1\/ns\/pid/,
  ],
  [
    'a user namespace with no mapping of ferry’s',
    (s) => s.linux.namespaces.push({ type: 'user' }),
    /^spec\.dump: linux\.uidMappings: a user namespace maps root to one range/,
  ],
  [
    'a user namespace mapping root to the host’s root',
    (s) => {
      s.linux.namespaces.push({ type: 'user' });
      s.linux.uidMappings = s.linux.gidMappings = [{ containerID: 0, hostID: 0, size: 65536 }];
    },
    /^spec\.dump: linux\.uidMappings: .*never the host's own/,
  ],
  [
    'groups mapped elsewhere than users',
    (s) => {
      s.linux.namespaces.push({ type: 'user' });
      s.linux.uidMappings = [{ containerID: 0, hostID: 131072, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 196608, size: 65536 }];
    },
    /^spec\.dump: linux\.gidMappings: the same range as the users/,
  ],
  [
    'a mapping with no user namespace',
    (s) => (s.linux.uidMappings = [{ containerID: 0, hostID: 131072, size: 65536 }]),
    /^spec\.dump: linux\.uidMappings: a mapping with no user namespace/,
  ],
  ['a hook', (s) => (s.hooks = { prestart: [{ path: '/bin/sh' }] }), /^spec\.dump: hooks: /],
  [
    'a capability ferry does not grant',
    (s) => s.process.capabilities.bounding.push('CAP_SYS_ADMIN'),
    /^spec\.dump: process\.capabilities\.bounding: CAP_SYS_ADMIN is wider than ferry grants/,
  ],
  ['a sysctl', (s) => (s.linux.sysctl = { 'kernel.panic': '1' }), /^spec\.dump: linux\.sysctl: /],
  ['a terminal', (s) => (s.process.terminal = true), /^spec\.dump: process\.terminal: /],
  [
    'a capability set of no known name (found by the fuzz below)',
    (s) => (s.process.capabilities[':'] = [null]),
    /^spec\.dump: process\.capabilities: ":" is not a capability set/,
  ],
];

/** Each case of `table`, applied to `base`, is refused naming its field. */
function refusesEach(kind: string, base: unknown, table: Array<[string, (s: Loose) => void, RegExp]>) {
  for (const [what, change, reason] of table)
    test(`a ${kind} with ${what} is refused naming the field`, () => {
      const s = structuredClone(base) as Loose;
      change(s);
      assert.throws(
        () => specFacts(JSON.stringify(s), 'spec.dump'),
        (err: unknown) =>
          err instanceof FerryError && err.code === 'StreamRejected' && reason.test(err.message),
      );
    });
}

refusesEach('spec', valid, hostile);

test('a GPU container’s NVIDIA nodes and their cgroup rules are read as facts, their numbers left behind', () => {
  const gpu = buildOciSpec({
    ...input,
    devices: [
      { path: '/dev/nvidia0', type: 'c', major: 195, minor: 0 },
      { path: '/dev/nvidiactl', type: 'c', major: 195, minor: 255 },
      { path: '/dev/nvidia-uvm', type: 'c', major: 507, minor: 0 },
    ],
  });
  const f = specFacts(JSON.stringify(gpu), 'config.json');
  assert.deepEqual(f.gpuDevices, ['/dev/nvidia0', '/dev/nvidiactl', '/dev/nvidia-uvm']);
  assert.deepEqual(specFacts(JSON.stringify(valid), 'config.json').gpuDevices, []);
});

test('a huge spec is refused before it is parsed', () => {
  const huge = JSON.stringify({ ...valid, annotations: { pad: 'x'.repeat(MAX_SPEC_BYTES) } });
  assert.throws(() => specFacts(huge, 'spec.dump'), /spec\.dump: \(whole file\): \d+ bytes, more than/);
});

/** Every path to a value in a document. */
function paths(v: unknown, at: string[] = []): string[][] {
  if (typeof v !== 'object' || v === null) return [at];
  return [at, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...at, k]))];
}

for (const [base, spec] of [
  ['ferry’s', valid],
  ['Podman’s', podman],
] as const)
  test(`fuzzed specs (from ${base}) never crash the reader, and what it accepts is never wider than ferry’s own`, () => {
    const all = paths(spec).filter((p) => p.length);
    fc.assert(
      fc.property(
        fc.constantFrom(...all),
        fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.anything({ maxDepth: 2 })),
        (path, value) => {
          const s = structuredClone(spec) as Record<string, unknown>;
          let o = s;
          for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
          o[path.at(-1)!] = value;
          let f: SpecFacts;
          try {
            f = specFacts(JSON.stringify(s), 'spec.dump');
          } catch (err) {
            assert.ok(err instanceof FerryError && err.code === 'StreamRejected', String(err));
            assert.match(err.message, /^spec\.dump: [^:]+: /);
            return;
          }
          // Accepted: ferry's spec from it has ferry's root, mounts, no devices, no wider caps.
          const built = rebuild(f) as Loose;
          assert.equal(built.root.path, 'rootfs');
          assert.deepEqual(built.linux.devices, []);
          for (const c of built.process.capabilities.bounding)
            assert.ok([...CAPS, 'CAP_SYS_ADMIN'].includes(c));
          for (const m of built.mounts)
            assert.ok(
              m.type !== 'bind' ||
                m.source === input.volumes![0]!.source ||
                m.source === NODE.selfDir ||
                m.source.startsWith(ENGINE_SOURCE),
              `bind of ${m.source}`,
            );
        },
      ),
      { numRuns: 2000 },
    );
  });

test('Podman’s spec is read for its facts: its engine’s files, cgroup mount and namespace are remade, never its host paths', () => {
  const f = specFacts(JSON.stringify(podman), 'spec.dump');
  assert.equal(f.libpod, true);
  assert.deepEqual(f.args.slice(0, 2), ['sh', '-c']);
  assert.deepEqual(
    [...f.engineFiles].sort(),
    ['/dev/shm', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf', '/run/.containerenv'].sort(),
  );
  assert.equal(f.cgroupMount, true);
  assert.equal(f.joinsNetns, true);
  assert.deepEqual(f.extraCaps, [], 'Podman’s defaults are accepted, not granted');
  assert.deepEqual(f.volumes, []);
  const built = rebuild(f) as Loose;
  assert.equal(built.root.path, 'rootfs');
  const text = JSON.stringify(built);
  assert.ok(
    !text.includes('/var/lib/containers') && !text.includes('/run/containers'),
    'no Podman host path',
  );
  assert.deepEqual(built.process.capabilities.bounding, CAPS);
  for (const p of podman.linux.maskedPaths) assert.ok(built.linux.maskedPaths.includes(p), `${p} masked`);
});

const hostilePodman: Array<[string, (s: Loose) => void, RegExp]> = [
  [
    'a host folder bound in (podman run -v /etc:/host-etc)',
    (s) => s.mounts.push({ destination: '/host-etc', type: 'bind', source: '/etc', options: ['rbind'] }),
    /^spec\.dump: mounts\[\d+\]: bind \/etc at \/host-etc: /,
  ],
  [
    'CAP_SYS_ADMIN (podman run --cap-add)',
    (s) => s.process.capabilities.bounding.push('CAP_SYS_ADMIN'),
    /^spec\.dump: process\.capabilities\.bounding: CAP_SYS_ADMIN is wider/,
  ],
  ['a kernel sysctl', (s) => (s.linux.sysctl = { 'kernel.panic': '1' }), /^spec\.dump: linux\.sysctl: /],
  [
    'a root that is not a containers-storage one',
    (s) => (s.root.path = '/'),
    /^spec\.dump: root\.path: "\/"/,
  ],
  [
    'a mask outside /proc and /sys',
    (s) => s.linux.maskedPaths.push('/etc/../../x'),
    /^spec\.dump: linux\.maskedPaths: /,
  ],
  [
    'the host’s network namespace (podman run --network host)',
    (s) => (s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== 'network')),
    /^spec\.dump: linux\.namespaces: no network namespace/,
  ],
  [
    'a user namespace mapping',
    (s) => (s.linux.uidMappings = [{ containerID: 0, hostID: 0, size: 1 }]),
    /^spec\.dump: linux\.uidMappings: /,
  ],
];

refusesEach('Podman spec', podman, hostilePodman);
