// The page stream's possible paths, side by side (bench/transfer.ts runs this): CRIU dumps the
// same workload process on node1 into a `criu page-server` on node2 over
//  - plain TCP between the namespaces: no encryption, no authentication, the limit;
//  - ferry's SSH tunnel: what the agents use (the target's agent starts the page server, the pages
//    cross inside the mutually authenticated SSH connection, AES-GCM);
//  - CRIU's own TLS (GnuTLS), each end pinning the other's self-signed certificate, which is how
//    certificates derived from the nodes' identities would be used; a third certificate is
//    refused, so the authentication is mutual.
// Time is CRIU's dump from start to exit; CPU is every process's on both ends (CRIU, the agent
// for the tunnel), from /proc, so the cost of each byte shows where time alone hides it.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCriuServer } from '../agent/criu/criu-server.ts';
import { netnsName, nodeAddress } from '../cluster/netns.ts';
import { nodeEntry, REPO_ROOT } from '../cluster/processes.ts';
import { exec } from '../lib/exec.ts';
import { FERRY_OPT, fsLayout, nodePaths } from '../lib/paths.ts';
import { cpuOf } from './proc-cpu.ts';
import { median } from './results-file.ts';

const CRIU = path.join(FERRY_OPT, 'bin/criu');
/** `criu dump` of `pid` into `dir`, its pages to the page server at address:port. */
export const dumpToPageServer = (pid: string, dir: string, address: string, port: number): string[] => [
  'dump',
  '-t',
  pid,
  '-D',
  dir,
  '-o',
  'dump.log',
  '--page-server',
  '--address',
  address,
  '--port',
  String(port),
];

interface Sample {
  ms: number;
  /** CPU time in ms. */
  cpu: number;
}

export interface PagePathRow {
  path: string;
  mib: number;
  ms: number;
  bytesPerSecond: number;
  /** CPU time, both ends together, per GiB of pages. */
  cpuSecondsPerGiB: number;
}

export async function measurePagePaths(opts: {
  cluster: string;
  subnet: string;
  mib: number;
  runs: number;
}): Promise<{ rows: PagePathRow[]; refusedForeignCertificate: boolean }> {
  const { cluster } = opts;
  const ns = (node: string) => `--net=/run/netns/${netnsName(cluster, node)}`;
  const n1 = nodePaths(cluster, 'node1');
  const n2 = nodePaths(cluster, 'node2');
  const agent2 = Number((await readFile(n2.pidFile, 'utf8')).trim());
  const certs = await mkdtemp(path.join(tmpdir(), 'ferry-tls-')); // 0700
  for (const name of ['node1', 'node2', 'stranger'])
    await exec('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      `${certs}/${name}.key`,
      '-out',
      `${certs}/${name}.crt`,
    ]);
  const tls = (self: string, peer: string) => [
    '--tls',
    '--tls-cacert',
    `${certs}/${peer}.crt`,
    '--tls-cert',
    `${certs}/${self}.crt`,
    '--tls-key',
    `${certs}/${self}.key`,
    '--tls-no-cn-verify',
  ];

  /** The workload program holding `mib` MiB, started in node1's namespace; its PID once it is full. */
  async function workload(dir: string): Promise<number> {
    const child = spawn(
      'nsenter',
      [ns('node1'), `${FERRY_OPT}/bin/workload`, '--mem-mib', String(opts.mib), '--dir', dir],
      {
        detached: true,
        stdio: 'ignore',
      },
    );
    child.unref();
    for (let i = 0; i < 200; i++) {
      if (
        await stat(path.join(dir, 'ready')).then(
          () => true,
          () => false,
        )
      )
        return child.pid!;
      await sleep(50);
    }
    throw new Error('the workload did not fill its memory');
  }

  /** One dump through a page server on node2 at its address (plain or TLS): its time, CRIU's CPU. */
  async function direct(client: string[], server: string[], dir: string, pid: number): Promise<Sample> {
    const pages = path.join(n2.imagesDir, 'bench-pages');
    await rm(pages, { recursive: true, force: true });
    await exec('mkdir', ['-p', '-m', '0700', pages]);
    const port = 9190;
    const srv = await startCriuServer(
      'nsenter',
      [
        ns('node2'),
        CRIU,
        'page-server',
        '-D',
        pages,
        '--address',
        nodeAddress(opts.subnet, 2),
        '--port',
        String(port),
        ...server,
      ],
      path.join(pages, 'page-server.log'),
      'TransferFailed',
      'bench page server',
    );
    try {
      const cpu0 = await cpuOf('self');
      const t0 = performance.now();
      await exec('nsenter', [
        ns('node1'),
        CRIU,
        ...dumpToPageServer(String(pid), dir, nodeAddress(opts.subnet, 2), port),
        ...client,
      ]);
      const took = performance.now() - t0;
      await srv.done;
      return { ms: took, cpu: (await cpuOf('self')) - cpu0 };
    } finally {
      await srv.stop();
      await rm(pages, { recursive: true, force: true });
    }
  }

  /** The same through ferry's tunnel: the sender's CPU (its CRIU's included) as it measured it. */
  async function tunnel(dir: string, pid: number): Promise<Sample> {
    const e = nodeEntry('bench/transfer-end.ts', ['ssh-pages', cluster, 'node1', 'node2', String(pid), dir]);
    const { stdout } = await exec('nsenter', [ns('node1'), ...e], { cwd: REPO_ROOT });
    await rm(fsLayout(n2.fsRoot, n2.imagesDir).images('bench-transfer-0001'), {
      recursive: true,
      force: true,
    });
    const r = JSON.parse(stdout) as { ms: number; cpuMs: number };
    return { ms: r.ms, cpu: r.cpuMs };
  }

  const variants: [string, (dir: string, pid: number) => Promise<Sample>][] = [
    [
      'CRIU page server, plain TCP (no encryption, no authentication): the limit',
      (d, p) => direct([], [], d, p),
    ],
    ['CRIU page server through ferry’s SSH tunnel (AES-GCM, node keys): what the agents use', tunnel],
    [
      'CRIU page server with its own TLS (GnuTLS, pinned self-signed certificates both ways)',
      (d, p) => direct(tls('node1', 'node2'), tls('node2', 'node1'), d, p),
    ],
  ];
  const samples = variants.map(() => [] as Sample[]);
  try {
    for (let r = 0; r < opts.runs; r++)
      for (const [i, [, run]] of variants.entries()) {
        const dir = path.join(n1.imagesDir, `bench-dump-${r}-${i}`);
        await exec('mkdir', ['-p', '-m', '0700', dir]);
        const pid = await workload(dir);
        // The target's side: its agent and the page server it reaps (idle but for the tunnel).
        const agent0 = await cpuOf(agent2);
        const s = await run(dir, pid).finally(() => exec('kill', ['-9', String(pid)]).catch(() => undefined));
        samples[i]!.push({ ms: s.ms, cpu: s.cpu + (await cpuOf(agent2)) - agent0 });
        await rm(dir, { recursive: true, force: true });
      }
    // The same TLS page server, a client with a certificate it does not trust: refused.
    const dir = path.join(n1.imagesDir, 'bench-dump-stranger');
    await exec('mkdir', ['-p', '-m', '0700', dir]);
    const pid = await workload(dir);
    const refused = await direct(tls('stranger', 'node2'), tls('node2', 'node1'), dir, pid).then(
      () => false,
      () => true,
    );
    await exec('kill', ['-9', String(pid)]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    const gib = opts.mib / 1024;
    const rows = variants.map(([name], i) => {
      const t = median(samples[i]!.map((s) => s.ms));
      return {
        path: name,
        mib: opts.mib,
        ms: Math.round(t),
        bytesPerSecond: Math.round((opts.mib * 2 ** 20) / (t / 1000)),
        cpuSecondsPerGiB: Number((median(samples[i]!.map((s) => s.cpu)) / 1000 / gib).toFixed(2)),
      };
    });
    return { rows, refusedForeignCertificate: refused };
  } finally {
    await rm(certs, { recursive: true, force: true });
  }
}
