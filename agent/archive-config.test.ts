// config.dump and deleted.files as archives carry them: Podman's shape read, hostile ones refused
// naming the field, fuzzed ones never crash the readers nor yield a path outside the root; and what
// ferry writes for Podman (config.dump's libpod fields, spec.dump's named volumes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FerryError } from '../lib/errors.ts';
import {
  libpodConfig,
  MAX_DELETED,
  podmanVolumePath,
  readArchiveConfig,
  readDeletedFiles,
  specForArchive,
} from './archive-config.ts';
import { buildOciSpec, SELF_MOUNT, volumeName } from './runtime/oci-spec.ts';

const ID = 'e660f0fb71d093e23c8b9ba8c36135e6ec669ed5480c366eceb617caaad9e0ac';

test('config.dump: the image below is read from Podman’s fields; other fields are left alone', () => {
  const c = readArchiveConfig(
    JSON.stringify({ id: 'x', name: 'c1', rootfsImageID: ID, rootfsImageName: 'localhost/bb:1', lockID: 0 }),
  );
  assert.equal(c.rootfsImageID, ID);
  assert.equal(c.rootfsImageName, 'localhost/bb:1');
});

for (const [what, raw, reason] of [
  ['not JSON', '{', /^config\.dump: not JSON$/],
  ['a list', '[1,2,3]', /^config\.dump: \(document\): .*expected object/],
  [
    'an image ID that is a path',
    JSON.stringify({ rootfsImageID: '../../etc' }),
    /rootfsImageID: an image ID/,
  ],
  [
    'an image name with a space',
    JSON.stringify({ rootfsImageName: 'a b' }),
    /rootfsImageName: an image name/,
  ],
] as const)
  test(`config.dump that is ${what} is refused naming the field`, () => {
    assert.throws(
      () => readArchiveConfig(raw),
      (e: unknown) => e instanceof FerryError && e.code === 'StreamRejected' && reason.test(e.message),
    );
  });

test('deleted.files: absent, empty or Podman’s JSON list of absolute paths, returned inside the root', () => {
  assert.deepEqual(readDeletedFiles(''), []);
  assert.deepEqual(readDeletedFiles('[]'), []);
  assert.deepEqual(readDeletedFiles('[\n  "/bin/ls",\n  "/etc/motd"\n]'), ['bin/ls', 'etc/motd']);
});

for (const [what, raw] of [
  ['a path climbing out', '["/../../etc/passwd"]'],
  ['a relative path', '["etc/passwd"]'],
  ['the root itself', '["/"]'],
  ['a path with //', '["/a//b"]'],
  ['a path with .', '["/a/./b"]'],
  ['a number', '[1]'],
  ['an object', '{"a":1}'],
  ['newline-separated text', 'bin/ls\netc/motd\n'],
  ['too many paths', JSON.stringify(Array.from({ length: MAX_DELETED + 1 }, (_, i) => `/f${i}`))],
] as const)
  test(`deleted.files with ${what} is refused`, () => {
    assert.throws(
      () => readDeletedFiles(raw),
      (e: unknown) => e instanceof FerryError && /^deleted\.files: /.test(e.message),
    );
  });

test('fuzzed config.dump and deleted.files never crash the readers, nor yield a path outside the root', () => {
  fc.assert(
    fc.property(fc.oneof(fc.json(), fc.string()), (raw) => {
      try {
        const c = readArchiveConfig(raw);
        if (c.rootfsImageID !== undefined) assert.match(c.rootfsImageID, /^[0-9a-f]{64}$/);
      } catch (e) {
        assert.ok(e instanceof FerryError && /^config\.dump: /.test(e.message), String(e));
      }
    }),
    { numRuns: 2000 },
  );
  const piece = fc.constantFrom('a', '..', '.', '', 'b c', '.wh.x', '\0');
  const paths = fc.array(
    fc
      .tuple(fc.boolean(), fc.array(piece, { maxLength: 4 }))
      .map(([absolute, p]) => (absolute ? '/' : '') + p.join('/')),
  );
  fc.assert(
    fc.property(
      fc.oneof(
        paths.map((p) => JSON.stringify(p)),
        fc.string(),
      ),
      (raw) => {
        let out: string[];
        try {
          out = readDeletedFiles(raw);
        } catch (e) {
          assert.ok(e instanceof FerryError && /^deleted\.files: /.test(e.message), String(e));
          return;
        }
        for (const p of out) {
          assert.ok(p !== '' && !p.startsWith('/'), p);
          assert.ok(
            p.split('/').every((s) => s !== '..' && s !== '.' && s !== ''),
            p,
          );
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test('ferry’s archives name its folders as Podman named volumes, which its own import reads back', () => {
  const spec = buildOciSpec({
    args: ['/bin/workload'],
    cgroupsPath: '/ferry/web',
    hostname: 'web',
    selfDir: '/run/ferry/local/node1/self/web',
    volumes: [
      { source: '/var/lib/ferry/local/nodes/node1/fs/containers/web/volumes/state', destination: '/state' },
    ],
  });
  const out = specForArchive(spec, 'web', SELF_MOUNT, volumeName);
  assert.deepEqual(out.volumes, [
    { volume: 'ferry-web-state', destination: '/state', name: 'state' },
    { volume: 'ferry-web-self', destination: '/run/ferry' },
  ]);
  const mounts = (out.spec.mounts as Array<Record<string, string>>).filter((m) => m.type === 'bind');
  assert.deepEqual(
    mounts.map((m) => m.source),
    [podmanVolumePath('ferry-web-state'), podmanVolumePath('ferry-web-self')],
  );
  assert.equal(volumeName(mounts[0]!), 'ferry-web-state');
  const annotations = out.spec.annotations as Record<string, string>;
  assert.equal(annotations['io.container.manager'], 'ferry');
  assert.equal(annotations['io.kubernetes.cri.container-name'], 'web');

  const config = libpodConfig({
    id: ID,
    name: 'web',
    args: ['/bin/workload'],
    image: { name: 'localhost/ferry-workload:96ae7662d4ba', id: ID },
    volumes: out.volumes,
    node: 'node1',
    now: '2026-11-28T00:00:00.000Z',
  });
  assert.equal(config.rootfsImageName, 'localhost/ferry-workload:96ae7662d4ba');
  assert.deepEqual(config.namedVolumes, [
    { volumeName: 'ferry-web-state', dest: '/state', options: [] },
    { volumeName: 'ferry-web-self', dest: '/run/ferry', options: [] },
  ]);
  assert.equal(readArchiveConfig(JSON.stringify(config)).rootfsImageID, ID);
});
