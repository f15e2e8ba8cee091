// A REAL containerd per test node (scripts/install-containerd.sh puts 2.1 in /opt/ferry/containerd),
// with what a Kubernetes node gives it: a CNI bridge for pod networks (Debian's
// containernetworking-plugins), a pause image, and a registry its images are pulled from (Debian's
// docker-registry on 127.0.0.1: containerd pulls a checkpoint's base image at restore even when it
// holds it). Each node's containerd has its own root, state, socket, runc root and bridge, all under
// the node's folders (cluster/cluster.ts nodeContainerd), and runs in the host's network namespace:
// pods get their own network namespace from CNI, as on a real node.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeContainerd } from '../cluster/cluster.ts';
import { exec, run } from '../lib/exec.ts';
import { CriClient } from '../lib/kube/cri.ts';
import { FERRY_HOME, FERRY_OPT } from '../lib/paths.ts';

const BIN = path.join(FERRY_OPT, 'containerd/usr/bin');
export const REGISTRY = '127.0.0.1:10300';
export const PAUSE_IMAGE = `${REGISTRY}/ferry/pause:1`;
/** ferry's test workload (workload/workload.c) over busybox, its files in /data. */
export const COUNTER_IMAGE = `${REGISTRY}/ferry/counter:1`;

/** Kills what a pid file names, if it still runs `what`. */
async function killPidFile(pidFile: string, what: string): Promise<void> {
  const pid = Number(await readFile(pidFile, 'utf8').catch(() => '0'));
  if (!pid) return;
  const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (cmd.includes(what)) process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) await sleep(100);
  await rm(pidFile, { force: true });
}

/** Starts Debian's docker-registry on REGISTRY, its storage kept across runs. */
export async function startRegistry(): Promise<ChildProcess> {
  const dir = path.join(FERRY_HOME, 'test-registry');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await killPidFile(path.join(dir, 'pid'), 'docker-registry');
  const config = path.join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${dir}/storage`,
      'http:',
      `  addr: ${REGISTRY}`,
      'log:',
      '  level: error',
    ].join('\n'),
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  await writeFile(path.join(dir, 'pid'), String(child.pid));
  for (let i = 0; i < 100; i++) {
    const r = await fetch(`http://${REGISTRY}/v2/`).catch(() => undefined);
    if (r?.ok) return child;
    await sleep(100);
  }
  child.kill();
  throw new Error(`docker-registry did not answer on ${REGISTRY}`);
}

/** Builds the pause and counter images with umoci and pushes them, unless the registry has them. */
export async function pushTestImages(): Promise<void> {
  const layout = path.join(FERRY_HOME, 'images', 'pod-test-oci');
  const images: [string, string, (root: string) => Promise<void>, string[]][] = [
    [
      'pause',
      PAUSE_IMAGE,
      async (root) =>
        run('install', ['-m', '0755', path.join(FERRY_OPT, 'bin/pause'), `${root}/pause`]).then(),
      ['--config.entrypoint', '/pause'],
    ],
    [
      'counter',
      COUNTER_IMAGE,
      async (root) => {
        await mkdir(`${root}/bin`, { recursive: true });
        await mkdir(`${root}/data`, { recursive: true });
        await run('install', ['-m', '0755', '/bin/busybox', `${root}/bin/busybox`]);
        await run('ln', ['-sf', 'busybox', `${root}/bin/sh`]);
        await run('install', ['-m', '0755', path.join(FERRY_OPT, 'bin/workload'), `${root}/bin/workload`]);
      },
      ['--config.entrypoint', '/bin/workload']
        .concat(['--config.cmd', '--mem-mib', '--config.cmd', '16'])
        .concat(['--config.cmd', '--dir', '--config.cmd', '/data']),
    ],
  ];
  for (const [tag, ref, fill, config] of images) {
    const pushed = await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
    if (pushed.code === 0) continue;
    if (!existsSync(path.join(layout, 'index.json'))) await run('umoci', ['init', '--layout', layout]);
    const bundle = `${layout}-${tag}`;
    await rm(bundle, { recursive: true, force: true });
    await exec('umoci', ['rm', '--image', `${layout}:${tag}`]);
    await run('umoci', ['new', '--image', `${layout}:${tag}`]);
    await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
    await fill(`${bundle}/rootfs`);
    await run('umoci', ['repack', '--image', `${layout}:${tag}`, bundle]);
    await run('umoci', ['config', '--image', `${layout}:${tag}`, ...config]);
    await rm(bundle, { recursive: true, force: true });
    await run('skopeo', [
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      `oci:${layout}:${tag}`,
      `docker://${ref}`,
    ]);
  }
}

export interface ContainerdNode {
  node: string;
  cri: CriClient;
  socket: string;
  /** The node's /var/lib/kubelet, for the fake kubelet. */
  kubeletDir: string;
  stop(): Promise<void>;
}

/** Removes every pod a node's containerd runs (its shims outlive it), then stops it. */
async function drain(cri: CriClient): Promise<void> {
  for (const id of await cri.listPodSandboxes().catch(() => [])) {
    await cri.stopPodSandbox(id).catch(() => undefined);
    await cri.removePodSandbox(id).catch(() => undefined);
  }
}

/** Drains and stops what an earlier run of a node's containerd left, and removes its folders. */
async function clean(cluster: string, node: string): Promise<void> {
  const c = nodeContainerd(cluster, node);
  if (existsSync(c.socket)) {
    const old = new CriClient(c.socket);
    await drain(old);
    old.close();
  }
  await killPidFile(path.join(c.dir, 'containerd.pid'), 'containerd');
  await exec('umount', ['--recursive', '--lazy', c.dir]);
  for (const dir of [c.dir, c.runcOption, c.kubeletDir]) await rm(dir, { recursive: true, force: true });
}

/**
 * Starts node `i`'s containerd of `cluster` afresh (whatever an earlier run left is drained and
 * removed first), its pods on 10.88.`i`.0/24 behind bridge fcni-`i`.
 */
export async function startContainerd(cluster: string, node: string, i: number): Promise<ContainerdNode> {
  const c = nodeContainerd(cluster, node);
  const pidFile = path.join(c.dir, 'containerd.pid');
  await clean(cluster, node);
  await mkdir(path.join(c.dir, 'cni'), { recursive: true, mode: 0o700 });
  const opt = `plugins.'io.containerd.cri.v1`;
  await writeFile(
    path.join(c.dir, 'config.toml'),
    [
      'version = 3',
      `root = "${c.dir}/root"`,
      `state = "${c.dir}/state"`,
      '[grpc]',
      `  address = "${c.socket}"`,
      '[ttrpc]',
      `  address = "${c.socket}.ttrpc"`,
      `[${opt}.runtime']`,
      '  enable_selinux = false',
      // Without it runc create fails in a namespace that may not lower oom_score_adj (shared/environment.md).
      '  restrict_oom_score_adj = true',
      `[${opt}.runtime'.containerd]`,
      '  default_runtime_name = "runc"',
      `[${opt}.runtime'.containerd.runtimes.runc]`,
      '  runtime_type = "io.containerd.runc.v2"',
      `[${opt}.runtime'.containerd.runtimes.runc.options]`,
      `  Root = "${c.runcOption}"`,
      `[${opt}.runtime'.cni]`,
      '  bin_dirs = ["/usr/lib/cni"]',
      `  conf_dir = "${c.dir}/cni"`,
      `[${opt}.images'.pinned_images]`,
      `  sandbox = "${PAUSE_IMAGE}"`,
      `[plugins.'io.containerd.internal.v1.opt']`,
      `  path = "${c.dir}/opt"`,
    ].join('\n') + '\n',
  );
  await writeFile(
    path.join(c.dir, 'cni', '10-ferry.conflist'),
    JSON.stringify({
      cniVersion: '1.0.0',
      name: `ferry-${node}`,
      plugins: [
        {
          type: 'bridge',
          bridge: `fcni-${i}`,
          isGateway: true,
          ipMasq: false,
          ipam: { type: 'host-local', ranges: [[{ subnet: `10.88.${i}.0/24` }]], dataDir: `${c.dir}/ipam` },
        },
        { type: 'loopback' },
      ],
    }),
  );
  // containerd finds its shim, runc and CRIU on PATH; CRIU is ferry's (shared/environment.md).
  const env = { ...process.env, PATH: `${BIN}:${path.join(FERRY_OPT, 'bin')}:${process.env.PATH}` };
  const log = path.join(c.dir, 'containerd.log');
  const out = await open(log, 'a', 0o600);
  const child = spawn(`${BIN}/containerd`, ['--config', `${c.dir}/config.toml`], {
    env,
    stdio: ['ignore', out.fd, out.fd],
  });
  await out.close();
  await writeFile(pidFile, String(child.pid));
  const cri = new CriClient(c.socket);
  for (let n = 0; ; n++) {
    if (existsSync(c.socket) && (await cri.version().catch(() => undefined))) break;
    if (n > 100 || child.exitCode !== null)
      throw new Error(`containerd of ${node} did not start: ${await readFile(log, 'utf8').catch(() => '')}`);
    await sleep(100);
  }
  return {
    node,
    cri,
    socket: c.socket,
    kubeletDir: c.kubeletDir,
    async stop() {
      await drain(cri);
      cri.close();
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
      // Its state (images, snapshots, logs) is the node runtime's, not ferry's: none of it stays.
      await clean(cluster, node);
      await exec('ip', ['link', 'delete', `fcni-${i}`]);
    },
  };
}
