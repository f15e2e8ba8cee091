// A spec that crossed a boundary (an archive's spec.dump, a migration's config.json) is read for
// its facts and never taken whole: ferry's own specs round-trip; hostile ones are refused naming
// the field; fuzzed ones never crash the reader and never come out wider than ferry's own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
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
};
const valid = buildOciSpec(input);

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
    ...(f.address ? { network: { path: input.network!.path, address: f.address } } : {}),
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
    /^spec\.dump: linux\.devices: /,
  ],
  [
    'a device allowed in the cgroup',
    (s) => s.linux.resources.devices.push({ allow: true, access: 'rwm' }),
    /^spec\.dump: linux\.resources\.devices: /,
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
    'a user namespace',
    (s) => s.linux.namespaces.push({ type: 'user' }),
    /^spec\.dump: linux\.namespaces\[\d+\]: user: ferry restores none/,
  ],
  ['a hook', (s) => (s.hooks = { prestart: [{ path: '/bin/sh' }] }), /^spec\.dump: hooks: /],
  [
    'a capability ferry does not grant',
    (s) => s.process.capabilities.bounding.push('CAP_SYS_ADMIN'),
    /^spec\.dump: process\.capabilities\.bounding: CAP_SYS_ADMIN is wider than ferry grants/,
  ],
  ['a sysctl', (s) => (s.linux.sysctl = { 'kernel.panic': '1' }), /^spec\.dump: linux\.sysctl: /],
  ['a terminal', (s) => (s.process.terminal = true), /^spec\.dump: process\.terminal: /],
];

for (const [what, change, reason] of hostile)
  test(`a spec with ${what} is refused naming the field`, () => {
    const s = structuredClone(valid) as Loose;
    change(s);
    assert.throws(
      () => specFacts(JSON.stringify(s), 'spec.dump'),
      (err: unknown) =>
        err instanceof FerryError && err.code === 'StreamRejected' && reason.test(err.message),
    );
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

test('fuzzed specs never crash the reader, and what it accepts is never wider than ferry’s own', () => {
  const all = paths(valid).filter((p) => p.length);
  fc.assert(
    fc.property(
      fc.constantFrom(...all),
      fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.anything({ maxDepth: 2 })),
      (path, value) => {
        const s = structuredClone(valid) as Record<string, unknown>;
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
          assert.ok(m.type !== 'bind' || m.source === input.volumes![0]!.source || m.source === NODE.selfDir);
      },
    ),
    { numRuns: 2000 },
  );
});
