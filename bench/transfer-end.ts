// One end of a transfer-benchmark stream, run inside a node's network namespace by
// bench/transfer.ts: a plain TCP sink, a plain TCP sender, or ferry's SSH sender to a node's agent.
//   tcp-sink PORT | tcp-send HOST PORT FILE | ssh-send CLUSTER NODE TARGET FILE [zstd|plain] [BYTES_PER_SECOND]
//   | ssh-pages CLUSTER NODE TARGET PID DUMP_DIR   (CRIU dumps PID, its pages through ferry's tunnel)
// Each sender prints {bytes, ms, cpuMs}: cpuMs is this process's CPU time (user + system) for it.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { exec } from '../lib/exec.ts';
import { FERRY_OPT } from '../lib/paths.ts';
import { loadPeers } from '../agent/transfer/ssh-server.ts';
import { TransferSession } from '../agent/transfer/sender.ts';
import { nodePaths, clusterDir } from '../lib/paths.ts';
import { expectBenchTransfer } from './bench-cluster.ts';
import { cpuOf } from './proc-cpu.ts';
import { dumpToPageServer } from './page-paths.ts';

const [mode, ...args] = process.argv.slice(2);

/** A transfer session from `node` to `target` for the made-up migration the benchmarks use. */
async function benchSession(cluster: string, node: string, target: string, bandwidth?: number) {
  await expectBenchTransfer(cluster, { target, uid: 'bench-transfer-0001', source: node });
  const peers = await loadPeers(`${clusterDir(cluster)}/peers.json`);
  return TransferSession.open({
    self: node,
    privateKey: await readFile(nodePaths(cluster, node).keyFile, 'utf8'),
    peer: peers.find((p) => p.node === target)!,
    migration: 'bench-transfer-0001',
    ...(bandwidth ? { bandwidth } : {}),
  });
}
const cpuMs = (since: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};

if (mode === 'tcp-sink') {
  const server = createServer({ noDelay: true }, (sock) => {
    let n = 0;
    const cpu = process.cpuUsage();
    sock.on('data', (d: Buffer) => (n += d.length));
    sock.on('end', () => sock.end(JSON.stringify({ bytes: n, cpuMs: cpuMs(cpu) })));
  });
  server.listen(Number(args[0]), () => console.log('ready'));
} else if (mode === 'tcp-send') {
  const [host, port, file] = args as [string, string, string];
  const sock = connect({ host, port: Number(port), noDelay: true });
  await new Promise((r) => sock.once('connect', r));
  const t0 = performance.now();
  const cpu = process.cpuUsage();
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), sock, { end: false });
  sock.end();
  const sink = JSON.parse(String(await new Promise((r) => sock.once('data', r)))) as { cpuMs: number };
  console.log(
    JSON.stringify({
      bytes: (await stat(file)).size,
      ms: performance.now() - t0,
      cpuMs: cpuMs(cpu),
      receiverCpuMs: sink.cpuMs,
    }),
  );
  sock.destroy();
} else if (mode === 'ssh-send') {
  const [cluster, node, target, file, compression, limit] = args as [
    string,
    string,
    string,
    string,
    string?,
    string?,
  ];
  const session = await benchSession(cluster, node, target, limit ? Number(limit) : undefined);
  const t0 = performance.now();
  const cpu = process.cpuUsage();
  await session.sendFile(file, 'bench/payload.bin', { compress: compression === 'zstd' });
  const bytes = (await stat(file)).size; // what arrived; session.bytes is what crossed the wire
  const wire = session.bytes;
  await session.finish();
  const ms = performance.now() - t0;
  session.close();
  console.log(JSON.stringify({ bytes, ms, wire, cpuMs: cpuMs(cpu) }));
} else if (mode === 'ssh-pages') {
  const [cluster, node, target, pid, dir] = args as [string, string, string, string, string];
  const session = await benchSession(cluster, node, target);
  const t0 = performance.now();
  const cpu = await cpuOf('self'); // CRIU's, once reaped, included
  await session.streamDump((port) =>
    exec(`${FERRY_OPT}/bin/criu`, dumpToPageServer(pid, dir, '127.0.0.1', port)),
  );
  await session.finish();
  const ms = performance.now() - t0;
  session.close();
  console.log(JSON.stringify({ ms, wire: session.bytes, cpuMs: (await cpuOf('self')) - cpu }));
} else {
  console.error(
    'usage: transfer-end tcp-sink PORT | tcp-send HOST PORT FILE | ssh-send CLUSTER NODE TARGET FILE [zstd|plain] [BYTES_PER_SECOND] | ssh-pages CLUSTER NODE TARGET PID DUMP_DIR',
  );
  process.exit(2);
}
