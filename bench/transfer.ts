// Transfer throughput between two local nodes (network namespaces on a bridge): ferry's SSH
// transfer (AES-GCM, framed, sha256 per item) against a plain TCP stream between the same two
// namespaces, measured in the same run, the physical limit here. Writes bench/results/transfer.json.
//   node --import tsx bench/transfer.ts [--mib 512] [--runs 3]
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { clusterDown, clusterUp } from '../cluster/cluster.ts';
import { nodeEntry, REPO_ROOT } from '../cluster/processes.ts';
import { netnsName, nodeAddress } from '../cluster/netns.ts';
import { bytes, table } from '../cli/format.ts';
import { fsLayout, nodePaths } from '../lib/paths.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '512' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const CLUSTER = 'bench';
const SUBNET = '10.79.0';
const run = promisify(execFile);
const inNode = (node: string, argv: string[]) => [
  'nsenter',
  `--net=/run/netns/${netnsName(CLUSTER, node)}`,
  ...argv,
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  await clusterUp({ name: CLUSTER, nodes: 2, subnet: SUBNET, faultHooks: false, diskGiB: 8, imagesGiB: 6 });
  const n1 = nodePaths(CLUSTER, 'node1');
  const file = path.join(n1.imagesDir, 'bench-payload.bin');
  // Random data: what CRIU's page images look like to a compressor.
  await run('dd', ['if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${values.mib}`, 'status=none']);
  const tcp: number[] = [];
  const ssh: number[] = [];
  try {
    for (let r = 0; r < Number(values.runs); r++) {
      const [cmd, ...args] = inNode('node2', nodeEntry('bench/transfer-end.ts', ['tcp-sink', '9099']));
      const sink = spawn(cmd!, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      await once(sink.stdout!, 'data');
      const t = inNode(
        'node1',
        nodeEntry('bench/transfer-end.ts', ['tcp-send', nodeAddress(SUBNET, 2), '9099', file]),
      );
      const tcpResult = JSON.parse((await run(t[0]!, t.slice(1), { cwd: REPO_ROOT })).stdout) as {
        bytes: number;
        ms: number;
      };
      sink.kill();
      tcp.push((tcpResult.bytes / tcpResult.ms) * 1000);
      const s = inNode(
        'node1',
        nodeEntry('bench/transfer-end.ts', ['ssh-send', CLUSTER, 'node1', 'node2', file]),
      );
      const sshResult = JSON.parse((await run(s[0]!, s.slice(1), { cwd: REPO_ROOT })).stdout) as {
        bytes: number;
        ms: number;
      };
      ssh.push((sshResult.bytes / sshResult.ms) * 1000);
      await rm(
        fsLayout(nodePaths(CLUSTER, 'node2').fsRoot, nodePaths(CLUSTER, 'node2').imagesDir).images(
          'bench-transfer-0001',
        ),
        { recursive: true, force: true },
      );
      console.log(`  run ${r + 1}: plain TCP ${bytes(tcp.at(-1))}/s, ferry SSH ${bytes(ssh.at(-1))}/s`);
    }
  } finally {
    await rm(file, { force: true });
    if (!values.keep) await clusterDown(CLUSTER);
  }
  const rows = [
    {
      path: 'plain TCP between the namespaces (no encryption, no framing)',
      bytesPerSecond: Math.round(median(tcp)),
    },
    {
      path: 'ferry transfer over SSH (aes128-gcm, sha256 per item)',
      bytesPerSecond: Math.round(median(ssh)),
    },
  ];
  const ratio = Number((median(ssh) / median(tcp)).toFixed(3));
  console.log('');
  console.log(
    table(
      ['PATH', 'THROUGHPUT (median)'],
      rows.map((r) => [r.path, `${bytes(r.bytesPerSecond)}/s`]),
    ),
  );
  console.log(`\nferry / plain TCP: ${ratio}  (compression: not implemented yet, so not measured)`);
  const out = path.join(REPO_ROOT, 'bench/results/transfer.json');
  await writeFile(
    out,
    JSON.stringify(
      {
        benchmark: 'transfer',
        date: new Date().toISOString(),
        payloadMiB: Number(values.mib),
        runs: Number(values.runs),
        rows,
        ratio,
        runsBytesPerSecond: { tcp, ssh },
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`results written to ${path.relative(process.cwd(), out)}`);
}

void main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
