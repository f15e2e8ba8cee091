// Transfer throughput between two local nodes (network namespaces on a bridge): ferry's SSH
// transfer (AES-GCM, framed, sha256 per item), with and without zstd, on random and on
// compressible data, against a plain TCP stream (no encryption) between the same two namespaces,
// measured in the same run: the physical limit here; with each path's CPU time per GiB, both ends
// together. Then the page stream's paths side by side (bench/page-paths.ts): plain TCP, ferry's SSH
// tunnel, CRIU's own TLS. Writes bench/results/transfer.json.
//   node --import tsx bench/transfer.ts [--mib 512] [--runs 3]
import { median, writeResults } from './results-file.ts';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { clusterDown } from '../cluster/cluster.ts';
import { BENCH_CLUSTER as CLUSTER, BENCH_SUBNET, upBenchCluster } from './bench-cluster.ts';
import { nodeEntry, REPO_ROOT } from '../cluster/processes.ts';
import { netnsName, nodeAddress } from '../cluster/netns.ts';
import { bytes, table } from '../cli/format.ts';
import { fsLayout, nodePaths } from '../lib/paths.ts';
import { measurePagePaths } from './page-paths.ts';
import { cpuOf } from './proc-cpu.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '512' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const SUBNET = BENCH_SUBNET;
const run = promisify(execFile);
const inNode = (node: string, argv: string[]) => [
  'nsenter',
  `--net=/run/netns/${netnsName(CLUSTER, node)}`,
  ...argv,
];

/** Pages as a process's memory often looks: a quarter random, the rest zero or repeated. */
async function writeCompressible(file: string, mib: number): Promise<void> {
  const page = 4096;
  const buf = Buffer.alloc(mib * 2 ** 20);
  for (let off = 0; off < buf.length; off += page) {
    const kind = (off / page) % 4;
    if (kind === 0) randomFillSync(buf, off, page);
    else if (kind === 1) buf.fill('ferry log line 0123456789\n', off, off + page);
  }
  await writeFile(file, buf, { mode: 0o600 });
}

interface Variant {
  path: string;
  payload: 'random' | 'compressible';
  compression?: 'zstd';
  /** A bandwidth limit (spec.strategy.bandwidth), standing for a slower link than this bridge. */
  limit?: number;
}
const SLOW = 64 * 2 ** 20;

const VARIANTS: Variant[] = [
  { path: 'ferry over SSH (aes128-gcm, sha256 per item), random data', payload: 'random' },
  { path: 'ferry over SSH + zstd, random data', payload: 'random', compression: 'zstd' },
  { path: 'ferry over SSH, compressible data', payload: 'compressible' },
  { path: 'ferry over SSH + zstd, compressible data', payload: 'compressible', compression: 'zstd' },
  { path: 'ferry over SSH limited to 64 MiB/s, compressible data', payload: 'compressible', limit: SLOW },
  {
    path: 'ferry over SSH limited to 64 MiB/s + zstd, compressible data',
    payload: 'compressible',
    compression: 'zstd',
    limit: SLOW,
  },
];

async function main() {
  await upBenchCluster();
  const n1 = nodePaths(CLUSTER, 'node1');
  const files = {
    // Random data: what CRIU's page images of a busy heap look like to a compressor.
    random: path.join(n1.imagesDir, 'bench-random.bin'),
    compressible: path.join(n1.imagesDir, 'bench-compressible.bin'),
  };
  await run('dd', ['if=/dev/urandom', `of=${files.random}`, 'bs=1M', `count=${values.mib}`, 'status=none']);
  await writeCompressible(files.compressible, Number(values.mib));
  const tcp: number[] = [];
  const tcpCpu: number[] = [];
  const ssh: number[][] = VARIANTS.map(() => []);
  const sshCpu: number[][] = VARIANTS.map(() => []);
  const agent2 = Number((await readFile(nodePaths(CLUSTER, 'node2').pidFile, 'utf8')).trim());
  const wire: number[] = VARIANTS.map(() => 0);
  let pages: Awaited<ReturnType<typeof measurePagePaths>> | undefined;
  try {
    for (let r = 0; r < Number(values.runs); r++) {
      const [cmd, ...args] = inNode('node2', nodeEntry('bench/transfer-end.ts', ['tcp-sink', '9099']));
      const sink = spawn(cmd!, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      await once(sink.stdout!, 'data');
      const t = inNode(
        'node1',
        nodeEntry('bench/transfer-end.ts', ['tcp-send', nodeAddress(SUBNET, 2), '9099', files.random]),
      );
      const tcpResult = JSON.parse((await run(t[0]!, t.slice(1), { cwd: REPO_ROOT })).stdout) as {
        bytes: number;
        ms: number;
        cpuMs: number;
        receiverCpuMs: number;
      };
      sink.kill();
      tcp.push((tcpResult.bytes / tcpResult.ms) * 1000);
      tcpCpu.push(tcpResult.cpuMs + tcpResult.receiverCpuMs);
      for (const [i, v] of VARIANTS.entries()) {
        const argv = [
          'ssh-send',
          CLUSTER,
          'node1',
          'node2',
          files[v.payload],
          v.compression ?? 'plain',
          ...(v.limit ? [String(v.limit)] : []),
        ];
        const e = inNode('node1', nodeEntry('bench/transfer-end.ts', argv));
        const agent0 = await cpuOf(agent2);
        const res = JSON.parse((await run(e[0]!, e.slice(1), { cwd: REPO_ROOT })).stdout) as {
          bytes: number;
          ms: number;
          wire: number;
          cpuMs: number;
        };
        ssh[i]!.push((res.bytes / res.ms) * 1000);
        sshCpu[i]!.push(res.cpuMs + (await cpuOf(agent2)) - agent0);
        wire[i] = res.wire;
        await rm(
          fsLayout(nodePaths(CLUSTER, 'node2').fsRoot, nodePaths(CLUSTER, 'node2').imagesDir).images(
            'bench-transfer-0001',
          ),
          { recursive: true, force: true },
        );
      }
      console.log(
        `  run ${r + 1}: plain TCP ${bytes(tcp.at(-1))}/s, ` +
          VARIANTS.map(
            (v, i) =>
              `${v.payload}${v.compression ? '+zstd' : ''}${v.limit ? '@64Mi' : ''} ${bytes(ssh[i]!.at(-1))}/s`,
          ).join(', '),
      );
    }
    await rm(files.random, { force: true });
    await rm(files.compressible, { force: true });
    console.log('  the page stream’s paths…');
    pages = await measurePagePaths({
      cluster: CLUSTER,
      subnet: SUBNET,
      mib: Number(values.mib),
      runs: Number(values.runs),
    });
  } finally {
    await rm(files.random, { force: true });
    await rm(files.compressible, { force: true });
    if (!values.keep) await clusterDown(CLUSTER);
  }
  const base = median(tcp);
  const size = Number(values.mib) * 2 ** 20;
  const perGiB = (cpuMs: number[]) => Number((median(cpuMs) / 1000 / (size / 2 ** 30)).toFixed(2));
  const rows = [
    {
      path: 'plain TCP between the namespaces (no encryption, no framing): the limit',
      bytesPerSecond: Math.round(base),
      ratioToTcp: 1,
      wireBytes: size,
      cpuSecondsPerGiB: perGiB(tcpCpu),
    },
    ...VARIANTS.map((v, i) => ({
      path: v.path,
      bytesPerSecond: Math.round(median(ssh[i]!)),
      ratioToTcp: Number((median(ssh[i]!) / base).toFixed(3)),
      wireBytes: wire[i]!,
      cpuSecondsPerGiB: perGiB(sshCpu[i]!),
    })),
  ];
  console.log('');
  console.log(
    table(
      ['PATH', 'THROUGHPUT (median, of the data delivered)', 'RATIO TO TCP', 'ON THE WIRE', 'CPU s/GiB'],
      rows.map((r) => [
        r.path,
        `${bytes(r.bytesPerSecond)}/s`,
        `${r.ratioToTcp}`,
        bytes(r.wireBytes),
        `${r.cpuSecondsPerGiB}`,
      ]),
    ),
  );
  const pageLimit = pages!.rows[0]!.bytesPerSecond;
  const pageRows = pages!.rows.map((r) => ({
    ...r,
    ratioToPlain: Number((r.bytesPerSecond / pageLimit).toFixed(3)),
  }));
  console.log('');
  console.log(
    table(
      [
        'PAGE STREAM (CRIU dump to a page server on node2)',
        'DUMP TIME',
        'THROUGHPUT',
        'RATIO TO PLAIN',
        'CPU s/GiB',
      ],
      pageRows.map((r) => [
        r.path,
        `${r.ms} ms`,
        `${bytes(r.bytesPerSecond)}/s`,
        `${r.ratioToPlain}`,
        `${r.cpuSecondsPerGiB}`,
      ]),
    ),
  );
  console.log(
    `TLS page server, a client certificate it does not trust: ${pages!.refusedForeignCertificate ? 'refused' : 'ACCEPTED'}`,
  );
  await writeResults('transfer', {
    benchmark: 'transfer',
    date: new Date().toISOString(),
    payloadMiB: Number(values.mib),
    runs: Number(values.runs),
    method:
      'median of runs; throughput = payload bytes delivered over wall time, so compression counts as faster when it sends fewer bytes; plain TCP measured in the same run with random data; CPU = user + system time of both ends (sender, receiver or agent, the CRIU they reaped) per GiB of payload; pageStream = CRIU dumping a workload process of payloadMiB on node1 to a page server on node2, time from the dump start to its exit',
    rows,
    pageStream: { rows: pageRows, refusedForeignCertificate: pages!.refusedForeignCertificate },
    runsBytesPerSecond: { tcp, ...Object.fromEntries(VARIANTS.map((v, i) => [v.path, ssh[i]])) },
  });
}

void main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
