// Bring your own container (issue 15, first part): an OCI image, built here with umoci as a user
// would build one offline, runs as `podman run -d` runs it (Entrypoint, Cmd, Env, WorkingDir; a
// command replacing Cmd; --env over the image's), moves to another node with its counter going on,
// and `ps` shows its image and command there, `exec` runs inside it and `logs` goes on where it left off. Images ferry cannot run are refused before anything
// runs, and leave nothing behind.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, truncate, copyFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '../cli/client.ts';
import { exec, run } from '../lib/exec.ts';
import { REPO_ROOT } from '../cluster/processes.ts';
import { nodePaths } from '../lib/paths.ts';
import { CLUSTER, list, migrate, testCluster, unique, until } from './helpers.ts';

/** Writes what it was given, then counts, in files and (every tenth) on stdout; one line on stderr. */
const SCRIPT =
  'echo "$GREETING" > /tmp/greeting; echo "greeting $GREETING"; echo oops >&2; pwd > /tmp/cwd; i=0; while :; do i=$((i+1)); echo $i > /tmp/c; [ $((i % 10)) = 0 ] && echo "tick $i"; sleep 0.1; done';

// Specs are edited freely here, as a user making a bundle would: any shape goes.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

let c: Client;
let dir: string;
let layout: string;
const archive = (tag: string) => path.join(dir, `${tag}.tar`);

before(async () => {
  c = await testCluster();
  dir = await mkdtemp('/tmp/ferry-image-');
  const root = path.join(dir, 'root');
  await mkdir(path.join(root, 'bin'), { recursive: true });
  for (const d of ['tmp', 'work', 'etc', 'proc', 'sys', 'dev']) await mkdir(path.join(root, d));
  await run('cp', ['/bin/busybox', path.join(root, 'bin/busybox')]);
  for (const a of ['sh', 'sleep', 'cat', 'echo', 'pwd']) await symlink('busybox', path.join(root, 'bin', a));
  await run('bash', ['-c', `printf 'root:x:0:0::/:/bin/sh\\n' > ${root}/etc/passwd`]);
  // As an image's files are: readable by all, /tmp writable by all (this process's umask is 077).
  await run('chmod', ['-R', 'u=rwX,go=rX', root]);
  await run('chmod', ['1777', path.join(root, 'tmp')]);
  const layer = path.join(dir, 'layer.tar');
  await run('tar', ['--create', '--file', layer, '--directory', root, '--numeric-owner', '.']);
  layout = path.join(dir, 'oci');
  await run('umoci', ['init', '--layout', layout]);
  // app: a shell script as its Cmd behind an Entrypoint, an environment and a working folder.
  for (const [tag, config] of [
    ['app', ['--config.entrypoint', '/bin/sh', '--config.entrypoint', '-c', '--config.cmd', SCRIPT]],
    ['arm', ['--architecture', 'arm64', '--config.cmd', '/bin/sh']],
    ['bare', []],
    ['nobody', ['--config.cmd', '/bin/sh', '--config.user', 'nobody2']],
    // Not root inside: what CRIU can dump here only in a user namespace of its own.
    [
      'worker',
      [
        '--config.entrypoint',
        '/bin/sh',
        '--config.entrypoint',
        '-c',
        '--config.cmd',
        SCRIPT,
        '--config.user',
        '1000:1000',
      ],
    ],
  ] as const) {
    await run('umoci', ['new', '--image', `${layout}:${tag}`]);
    await run('umoci', ['raw', 'add-layer', '--image', `${layout}:${tag}`, layer]);
    const env = [
      '--config.env',
      'GREETING=hello',
      '--config.env',
      'PATH=/bin',
      '--config.workingdir',
      '/work',
    ];
    await run('umoci', ['config', '--image', `${layout}:${tag}`, ...env, ...config]);
    await run('skopeo', ['copy', '--quiet', `oci:${layout}:${tag}`, `oci-archive:${archive(tag)}`]);
  }
});

after(async () => {
  await c.close();
  await rm(dir, { recursive: true, force: true });
});

/** Where a process's user namespace maps root to (its uid_map's first line). */
async function userRange(pid: number): Promise<number> {
  const line = (await readFile(`/proc/${pid}/uid_map`, 'utf8')).trim().split(/\s+/);
  return line[0] === '0' ? Number(line[1]) : 0;
}

/** A container's output so far, as `ferry logs` prints it. */
async function logs(node: string, container: string): Promise<string> {
  const r = await c.bus.call(node, { kind: 'logs', container });
  return Buffer.from(r.data, 'base64').toString('utf8');
}
const ticks = (text: string) => [...text.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1]));

const rootOf = (node: string, container: string) =>
  path.join(nodePaths(CLUSTER, node).fsRoot, 'containers', container, 'rootfs');
const read = (node: string, container: string, file: string) =>
  readFile(path.join(rootOf(node, container), file), 'utf8').catch(() => '');

test('an OCI image runs as podman run runs it, and moves to another node with its state', async () => {
  const container = unique('img');
  const job = {
    kind: 'runImage' as const,
    container,
    image: `oci-archive:${archive('app')}`,
    env: ['GREETING=bye'],
  };
  const info = await c.bus.call('node1', job, 120_000);
  assert.deepEqual(info.command, ['/bin/sh', '-c', SCRIPT]);
  assert.ok(await until(async () => (await read('node1', container, 'tmp/c')) !== '', 10_000));
  assert.equal(await read('node1', container, 'tmp/greeting'), 'bye\n', '--env over the image’s');
  assert.equal(await read('node1', container, 'tmp/cwd'), '/work\n', 'its WorkingDir');
  const environ = (await readFile(`/proc/${info.pid}/environ`, 'utf8')).split('\0');
  assert.ok(environ.includes('PATH=/bin') && environ.includes('GREETING=bye'), environ.join(' '));
  assert.ok(await until(async () => ticks(await logs('node1', container)).length > 0, 10_000));
  const logged = await logs('node1', container);
  assert.ok(logged.startsWith('greeting bye\n') && logged.includes('oops\n'), 'stdout and stderr kept');
  const lastTick = Math.max(...ticks(logged));
  const range = await userRange(info.pid!);
  assert.ok(range >= 131072, `a user namespace of its own (root inside is ${range} outside)`);
  const listed = (await list(c, 'node1')).find((x) => x.id === container);
  assert.equal(listed?.image, `oci-archive:${archive('app')}`);

  const m = await migrate(c, unique('img-move'), { node: 'node1', container }, 'node2');
  assert.equal(m.status?.phase, 'Succeeded', m.status?.failureReason);
  const before = Number(await read('node2', container, 'tmp/c'));
  assert.ok(
    await until(async () => Number(await read('node2', container, 'tmp/c')) > before, 10_000),
    'its counter goes on on node2',
  );
  const there = (await list(c, 'node2')).find((x) => x.id === container);
  assert.equal(there?.image, `oci-archive:${archive('app')}`, 'ps shows its image on node2 too');
  // Its output came along and goes on in the same file: the earlier lines, then later ticks.
  assert.ok(
    await until(async () => Math.max(...ticks(await logs('node2', container))) > lastTick + 10, 10_000),
  );
  assert.ok((await logs('node2', container)).startsWith(logged), 'the log on node2 begins with node1’s');
  const moved = (await list(c, 'node2')).find((x) => x.id === container);
  assert.equal(await userRange(moved!.pid!), range, 'the same user range on node2');
  const inside = await c.bus.call('node2', { kind: 'exec', container, command: ['cat', '/tmp/greeting'] });
  assert.deepEqual([inside.code, inside.stdout], [0, 'bye\n'], 'ferry exec runs inside it');
  await c.bus.call('node2', { kind: 'remove', container });
});

test('an image whose process is not root inside moves, in its user namespace', async () => {
  const container = unique('img-user');
  const job = { kind: 'runImage' as const, container, image: `oci-archive:${archive('worker')}` };
  const info = await c.bus.call('node1', job, 120_000);
  const status = await readFile(`/proc/${info.pid}/status`, 'utf8');
  const hostUid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
  assert.equal(hostUid, (await userRange(info.pid!)) + 1000, 'uid 1000 inside its range');
  assert.ok(await until(async () => (await read('node1', container, 'tmp/c')) !== '', 10_000));
  const m = await migrate(c, unique('img-user-move'), { node: 'node1', container }, 'node2');
  assert.equal(m.status?.phase, 'Succeeded', m.status?.failureReason);
  const before = Number(await read('node2', container, 'tmp/c'));
  assert.ok(await until(async () => Number(await read('node2', container, 'tmp/c')) > before, 10_000));
  await c.bus.call('node2', { kind: 'remove', container });
});

test('a command replaces the image’s Cmd and keeps its Entrypoint; an OCI layout is read as well', async () => {
  const container = unique('img-cmd');
  const command = ['echo given > /tmp/x; exec sleep 1000'];
  const job = { kind: 'runImage' as const, container, image: `oci:${layout}:app`, command };
  const info = await c.bus.call('node1', job, 120_000);
  assert.deepEqual(info.command, ['/bin/sh', '-c', ...command]);
  assert.ok(await until(async () => (await read('node1', container, 'tmp/x')) === 'given\n', 10_000));
  await c.bus.call('node1', { kind: 'remove', container });
});

const refusals: Array<[string, () => Promise<string>, RegExp]> = [
  [
    'a truncated image archive',
    async () => {
      const cut = path.join(dir, 'cut.tar');
      await copyFile(archive('app'), cut);
      await truncate(cut, 2048);
      return `oci-archive:${cut}`;
    },
    /cannot be read on this node/,
  ],
  [
    'an image for another machine',
    async () => `oci-archive:${archive('arm')}`,
    /is for linux\/arm64; this node runs linux\/amd64/,
  ],
  [
    'an image with nothing to run',
    async () => `oci-archive:${archive('bare')}`,
    /has no Entrypoint or Cmd: give the command/,
  ],
  [
    'an image whose user is not in it',
    async () => `oci-archive:${archive('nobody')}`,
    /user nobody2 is not in the image's \/etc\/passwd/,
  ],
  [
    'an image that is not there',
    async () => `oci-archive:${path.join(dir, 'absent.tar')}`,
    /cannot be read on this node/,
  ],
  ['a reference in no transport', async () => '/etc/passwd', /is not an image reference/],
];

for (const [what, ref, reason] of refusals)
  test(`${what} is refused before anything runs, and nothing is left`, async () => {
    const container = unique('img-bad');
    await assert.rejects(
      c.bus.call('node1', { kind: 'runImage', container, image: await ref() }, 120_000),
      reason,
    );
    assert.ok(!(await list(c, 'node1')).some((x) => x.id === container), 'no container');
    const fsRoot = nodePaths(CLUSTER, 'node1').fsRoot;
    assert.ok(!existsSync(path.join(fsRoot, 'containers', container)), 'no bundle');
    assert.ok(!existsSync(path.join(nodePaths(CLUSTER, 'node1').imagesDir, `pull-${container}`)), 'no copy');
  });

/** An OCI bundle as a user makes one: `runc spec`, changed by `change`, over the busybox root. */
async function bundle(name: string, change: (spec: Loose) => void): Promise<string> {
  const b = path.join(dir, 'bundles', name);
  await mkdir(b, { recursive: true });
  await run('cp', ['-a', path.join(dir, 'root'), path.join(b, 'rootfs')]);
  await run('runc', ['spec', '--bundle', b]);
  const spec = JSON.parse(await readFile(path.join(b, 'config.json'), 'utf8')) as Loose;
  spec.process.terminal = false;
  spec.process.args = ['/bin/sh', '-c', 'echo bundled; exec sleep 1000'];
  change(spec);
  await writeFile(path.join(b, 'config.json'), JSON.stringify(spec));
  return b;
}

test('an OCI bundle runs as runc runs it, read by the trust rule', async () => {
  const container = unique('bundle');
  const b = await bundle('good', () => undefined);
  const info = await c.bus.call('node1', { kind: 'runBundle', container, bundle: b, env: ['X=1'] }, 120_000);
  assert.deepEqual(info.command, ['/bin/sh', '-c', 'echo bundled; exec sleep 1000']);
  assert.ok(await until(async () => (await logs('node1', container)) === 'bundled\n', 10_000));
  const spec = JSON.parse(
    await readFile(
      path.join(nodePaths(CLUSTER, 'node1').fsRoot, 'containers', container, 'config.json'),
      'utf8',
    ),
  ) as Loose;
  assert.equal(spec.root.path, 'rootfs', 'its root is a copy in the container’s own bundle');
  assert.ok(spec.process.env.includes('X=1'));
  await c.bus.call('node1', { kind: 'remove', container });
});

const badBundles: Array<[string, (s: Loose) => void, RegExp]> = [
  ['a terminal (runc spec’s default)', (s) => (s.process.terminal = true), /process\.terminal: /],
  [
    'the host’s network',
    (s) => (s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== 'network')),
    /linux\.namespaces: no network namespace/,
  ],
  [
    'a device',
    (s) => (s.linux.devices = [{ path: '/dev/sda', type: 'b', major: 8, minor: 0 }]),
    /linux\.devices\[0\]: /,
  ],
  [
    'a host folder bound in',
    (s) => s.mounts.push({ destination: '/h', type: 'bind', source: '/etc', options: ['rbind'] }),
    /mounts\[\d+\]: bind \/etc at \/h/,
  ],
];

for (const [what, change, reason] of badBundles)
  test(`a bundle asking for ${what} is refused before anything runs, and nothing is left`, async () => {
    const container = unique('bundle-bad');
    const b = await bundle(unique('bad'), change);
    await assert.rejects(c.bus.call('node1', { kind: 'runBundle', container, bundle: b }, 120_000), reason);
    assert.ok(
      !existsSync(path.join(nodePaths(CLUSTER, 'node1').fsRoot, 'containers', container)),
      'no bundle',
    );
  });

test('ferry run refuses an address another container has, on any node, and starts nothing', async () => {
  const address = '10.78.0.165';
  const [first, second] = [unique('addr'), unique('addr')];
  const ferry = (args: string[]) =>
    exec(path.join(REPO_ROOT, 'bin/ferry'), ['--cluster', CLUSTER, 'run', ...args]);
  const image = `oci:${layout}:app`;
  const ok = await ferry([first, '--image', image, '--node', 'node1', '--address', address]);
  assert.equal(ok.code, 0, ok.stderr);
  const refused = await ferry([second, '--image', image, '--node', 'node2', '--address', address]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, new RegExp(`--address ${address} is in use by container ${first} on node1`));
  assert.ok(!(await list(c, 'node2')).some((x) => x.id === second), 'nothing started on node2');
  await c.bus.call('node1', { kind: 'remove', container: first });
});
