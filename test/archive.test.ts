// Checkpoint archives (Podman's layout; test/podman.test.ts has Podman itself): a running workload exported on node1
// and imported on node2 checks itself there; bad archives are refused with their reason and leave
// nothing behind (no container, nothing written outside the node's folders).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, truncate, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '../cli/client.ts';
import { run } from '../lib/exec.ts';
import { nodePaths } from '../lib/paths.ts';
import { buildOciSpec } from '../agent/runtime/oci-spec.ts';
import { CLUSTER, list, runWithVolume, runWorkload, testCluster, unique, verify } from './helpers.ts';

// Specs are edited freely here, as a hostile archive's author would: any shape goes.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

let c: Client;
let dir: string;
before(async () => {
  c = await testCluster();
  dir = await mkdtemp('/tmp/ferry-archive-');
});
after(async () => {
  await c.close();
  await rm(dir, { recursive: true, force: true });
});

const staged = (name: string) => path.join(nodePaths(CLUSTER, 'node2').imagesDir, `incoming-${name}.tar`);

async function importAs(name: string, archive: string) {
  const at = staged(name);
  await run('cp', [archive, at]);
  try {
    return await c.bus.call('node2', { kind: 'import', container: name, archive: at }, 120_000);
  } finally {
    await rm(at, { force: true });
  }
}

test('an exported checkpoint has the kubelet/Podman layout and restores on another node', async () => {
  const container = unique('arch');
  await runWorkload(c, 'node1', container, 16);
  const r = (await c.bus.call('node1', { kind: 'export', container }, 120_000)) as { archive: string };
  const archive = path.join(dir, 'good.tar');
  await run('mv', [r.archive, archive]);
  assert.equal((await stat(archive)).mode & 0o077, 0, 'not readable by others');
  const members = (await run('tar', ['--list', '--file', archive]))
    .split('\n')
    .map((m) => m.replace(/^\.\//, ''));
  for (const m of [
    'checkpoint/inventory.img',
    'checkpoint/pstree.img',
    'config.dump',
    'spec.dump',
    'rootfs-diff.tar',
    'deleted.files',
    'stats-dump',
  ])
    assert.ok(members.includes(m), `${m} in the archive`);
  // Podman's shape: config.dump names the image below the diff; deleted.files is a JSON list.
  const config = JSON.parse(
    await run('tar', ['--extract', '--to-stdout', '--file', archive, './config.dump']),
  );
  assert.match(config.rootfsImageName, /^localhost\/ferry-workload:[0-9a-f]{12}$/);
  assert.match(config.rootfsImageID, /^[0-9a-f]{64}$/);
  assert.deepEqual(
    JSON.parse(await run('tar', ['--extract', '--to-stdout', '--file', archive, './deleted.files'])),
    [],
  );
  // It kept running on node1; now it also starts on node2 from the archive, memory and file intact.
  assert.ok((await verify(c, 'node1', container)).pass);
  await c.bus.call('node1', { kind: 'remove', container });
  await importAs(container, archive);
  const v = await verify(c, 'node2', container);
  assert.ok(v.pass, v.line);
  await c.bus.call('node2', { kind: 'remove', container });
});

test('a container with a node-local volume carries it in the archive, as Podman does (volumes/NAME.tar)', async () => {
  const container = unique('arch-vol');
  const vol = await runWithVolume(c, 'node1', container);
  await writeFile(path.join(vol, 'ledger'), 'kept\n');
  const r = (await c.bus.call('node1', { kind: 'export', container, stop: true }, 120_000)) as {
    archive: string;
  };
  const archive = path.join(dir, 'vol.tar');
  await run('mv', [r.archive, archive]);
  assert.ok(
    (await run('tar', ['--list', '--file', archive])).includes(`volumes/ferry-${container}-state.tar`),
  );
  await importAs(container, archive);
  const pid = (await list(c, 'node2')).find((x) => x.id === container)?.pid;
  assert.equal(await readFile(`/proc/${pid}/root/state/ledger`, 'utf8'), 'kept\n');
  assert.ok((await verify(c, 'node2', container)).pass);
  await c.bus.call('node2', { kind: 'remove', container });
});

/** A spec as ferry writes one, changed by `change`. */
function specWith(change: (s: Loose) => void): string {
  const s: Loose = buildOciSpec({ args: ['/bin/workload'], cgroupsPath: '/x', hostname: 'evil' });
  change(s);
  return JSON.stringify(s);
}

const hostileSpecs: Array<[string, (s: Loose) => void, RegExp]> = [
  ['a spec whose root is /', (s) => (s.root.path = '/'), /spec\.dump: root\.path: "\/"/],
  [
    'a spec binding the host’s /etc',
    (s) => s.mounts.push({ destination: '/h', type: 'bind', source: '/etc' }),
    /spec\.dump: mounts\[\d+\]: bind \/etc at \/h/,
  ],
  [
    'a spec with a device',
    (s) => (s.linux.devices = [{ path: '/dev/sda', type: 'b', major: 8, minor: 0 }]),
    /spec\.dump: linux\.devices/,
  ],
  [
    'a spec sharing the host’s PID namespace',
    (s) => (s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== 'pid')),
    /spec\.dump: linux\.namespaces: no pid namespace/,
  ],
  ['a spec with a hook', (s) => (s.hooks = { prestart: [{ path: '/bin/sh' }] }), /spec\.dump: hooks/],
  ['a huge spec', (s) => (s.annotations.pad = 'x'.repeat(300_000)), /spec\.dump: \d+ bytes, more than/],
];

/** Builds a tar from a folder laid out by `make`, with extra tar arguments. */
async function badArchive(
  name: string,
  make: (d: string) => Promise<void>,
  extra: string[] = [],
): Promise<string> {
  const d = path.join(dir, name);
  await mkdir(path.join(d, 'checkpoint'), { recursive: true });
  await writeFile(path.join(d, 'checkpoint/inventory.img'), 'x');
  for (const f of ['config.dump', 'spec.dump', 'rootfs-diff.tar', 'deleted.files'])
    await writeFile(path.join(d, f), '{}');
  await make(d);
  const out = path.join(dir, `${name}.tar`);
  await run('tar', ['--create', '--file', out, '--directory', d, ...extra, '.']);
  return out;
}

const cases: Array<[string, () => Promise<string>, RegExp]> = [
  [
    'a member that climbs out with ..',
    () => badArchive('climb', async () => undefined, ['--transform', 's,^\\./config.dump,../../escape,']),
    /leaves the archive's folder/,
  ],
  [
    'a link pointing outside',
    () =>
      badArchive('link', (d) =>
        run('ln', ['-s', '/etc/shadow', path.join(d, 'checkpoint/evil')]).then(() => undefined),
      ),
    /is a link/,
  ],
  [
    'a truncated file',
    async () => {
      const a = await badArchive('short', (d) =>
        writeFile(path.join(d, 'checkpoint/pages-1.img'), Buffer.alloc(100_000, 1)),
      );
      await truncate(a, 20_000);
      return a;
    },
    /not a whole tar archive/,
  ],
  [
    'the wrong layout',
    () => badArchive('layout', (d) => rm(path.join(d, 'spec.dump'))),
    /not a checkpoint archive: spec.dump missing/,
  ],
  // Hostile descriptions: refused naming the field, before the trees or images are unpacked.
  ...hostileSpecs.map(([what, change, reason]): [string, () => Promise<string>, RegExp] => [
    what,
    () => badArchive(unique('spec'), (d) => writeFile(path.join(d, 'spec.dump'), specWith(change))),
    reason,
  ]),
  [
    'deleted.files climbing out with ..',
    () =>
      badArchive('deleted', async (d) => {
        await writeFile(
          path.join(d, 'spec.dump'),
          specWith(() => undefined),
        );
        await writeFile(path.join(d, 'deleted.files'), JSON.stringify(['/../../etc/passwd']));
      }),
    /deleted\.files: "\/\.\.\/\.\.\/etc\/passwd" is not a path inside the root/,
  ],
  [
    'a config.dump that is not an object',
    () =>
      badArchive('config', async (d) => {
        await writeFile(
          path.join(d, 'spec.dump'),
          specWith(() => undefined),
        );
        await writeFile(path.join(d, 'config.dump'), '[1,2,3]');
      }),
    /config\.dump: \(document\): .*expected object/,
  ],
];

for (const [what, make, reason] of cases) {
  test(`an archive with ${what} is refused with its reason, and nothing is written`, async () => {
    const name = unique('bad');
    const archive = await make();
    await assert.rejects(importAs(name, archive), reason);
    assert.ok(!(await list(c, 'node2')).some((x) => x.id === name), 'no container');
    assert.ok(!existsSync(path.join(nodePaths(CLUSTER, 'node2').fsRoot, 'containers', name)), 'no bundle');
    assert.ok(
      !existsSync(path.join(nodePaths(CLUSTER, 'node2').imagesDir, `import-${name}`)),
      'no unpacked folder',
    );
    assert.ok(
      !existsSync(path.resolve(nodePaths(CLUSTER, 'node2').imagesDir, '../escape')),
      'nothing outside',
    );
  });
}
