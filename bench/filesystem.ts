// The filesystem half of a move, on the btrfs driver, between two local nodes: the running (full)
// send of a volume's snapshot through ferry's SSH transfer against a plain `btrfs send | btrfs
// receive` of the same snapshot on the same machine (the ratio), and the frozen incremental send
// (`send -p`) for an idle volume and for 10 MiB and 100 MiB changed since the running send.
// Writes bench/results/filesystem.json.
//   node --import tsx bench/filesystem.ts [--mib 256] [--runs 3]
import { median, writeResults } from './results-file.ts';
import { randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadPeers } from '../agent/transfer/ssh-server.ts';
import { TransferSession } from '../agent/transfer/sender.ts';
import {
  createSubvolume,
  deleteSubvolume,
  receiveStream,
  sendStream,
  snapshot,
} from '../agent/snapshot/btrfs.ts';
import { clusterDown } from '../cluster/cluster.ts';
import { BENCH_CLUSTER as CLUSTER, expectBenchTransfer, upBenchCluster } from './bench-cluster.ts';
import { bytes, ms, table } from '../cli/format.ts';
import { clusterDir, fsLayout, nodePaths } from '../lib/paths.ts';
import { run } from '../lib/exec.ts';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const MIB = 2 ** 20;
const FILE_MIB = 4;
const MIGRATION = 'bench-fs-00000001';

/** Overwrites `mib` MiB of the volume's files with new random bytes (whole 4 MiB files). */
async function change(volume: string, mib: number, round: number): Promise<void> {
  const buf = Buffer.alloc(FILE_MIB * MIB);
  for (let i = 0; i < mib / FILE_MIB; i++) {
    randomFillSync(buf);
    buf.write(`round ${round}`);
    await writeFile(path.join(volume, `f${i}`), buf);
  }
  if (mib % FILE_MIB) {
    const fh = await open(path.join(volume, 'f0'), 'r+');
    await fh.write(randomFillSync(Buffer.alloc((mib % FILE_MIB) * MIB)), 0, undefined, 0);
    await fh.close();
  }
}

/** Writes back what earlier steps left dirty, so a step is not timed with another's write-back. */
const settle = () => run('sync', []);

/** The baseline: `btrfs send [-p] snap | btrfs receive dir`, the same machine, no network. */
async function plainSend(snap: string, into: string, parent?: string): Promise<number> {
  await settle();
  const t0 = performance.now();
  const send = sendStream(snap, parent);
  const recv = receiveStream(into);
  send.stdout.pipe(recv.stdin);
  const [[s], [r]] = (await Promise.all([once(send, 'close'), once(recv, 'close')])) as [[number], [number]];
  if (s !== 0 || r !== 0) throw new Error(`plain btrfs send/receive failed (${s}/${r})`);
  return performance.now() - t0;
}

async function main() {
  const mib = Number(values.mib);
  await upBenchCluster();
  const n1 = nodePaths(CLUSTER, 'node1');
  const n2 = nodePaths(CLUSTER, 'node2');
  const incoming = fsLayout(n2.fsRoot, n2.imagesDir).incoming(MIGRATION);
  const peer = (await loadPeers(path.join(clusterDir(CLUSTER), 'peers.json'))).find(
    (p) => p.node === 'node2',
  )!;
  const key = await readFile(n1.keyFile, 'utf8');
  await expectBenchTransfer(CLUSTER, { target: 'node2', uid: MIGRATION, source: 'node1' });
  const volume = path.join(n1.fsRoot, 'bench-volume');
  const base = path.join(n1.fsRoot, 'bench-base');
  const plainDir = path.join(n2.fsRoot, 'bench-plain');
  const full = { ferry: [] as number[], plain: [] as number[] };
  const incremental: Record<number, number[]> = { 0: [], 10: [], 100: [] };
  const send = async (snap: string, parent?: string) => {
    await settle();
    const s = await TransferSession.open({ self: 'node1', privateKey: key, peer, migration: MIGRATION });
    const t0 = performance.now();
    const parentRef = parent ? { path: parent, name: path.basename(parent) } : undefined;
    await s.sendBtrfs(snap, path.basename(snap), parentRef);
    await s.finish();
    s.close();
    return performance.now() - t0;
  };
  try {
    for (let r = 0; r < Number(values.runs); r++) {
      for (const p of [path.join(incoming, 'bench-base'), path.join(plainDir, 'bench-base'), base, volume])
        await deleteSubvolume(p);
      await rm(plainDir, { recursive: true, force: true });
      await createSubvolume(volume);
      await change(volume, mib, r); // the volume's content: `mib` MiB of random files
      await snapshot(volume, base, { readonly: true });
      full.ferry.push(await send(base));
      await mkdir(plainDir, { recursive: true });
      full.plain.push(await plainSend(base, plainDir));
      for (const changed of [0, 10, 100]) {
        const final = path.join(n1.fsRoot, `bench-final-${changed}`);
        await change(volume, changed, r + 100);
        await snapshot(volume, final, { readonly: true });
        incremental[changed]!.push(await send(final, base));
        await deleteSubvolume(path.join(incoming, path.basename(final)));
        await deleteSubvolume(final);
      }
      console.log(
        `  run ${r + 1}: running send ${ms(full.ferry.at(-1))} (plain ${ms(full.plain.at(-1))}), frozen increments ` +
          [0, 10, 100].map((k) => `${k} MiB ${ms(incremental[k]!.at(-1))}`).join(', '),
      );
    }
  } finally {
    for (const p of [path.join(incoming, 'bench-base'), path.join(plainDir, 'bench-base'), base, volume])
      await deleteSubvolume(p).catch(() => undefined);
    await rm(plainDir, { recursive: true, force: true });
    if (!values.keep) await clusterDown(CLUSTER);
  }
  const rate = (msTaken: number) => Math.round((mib * MIB * 1000) / msTaken);
  const result = {
    benchmark: 'filesystem',
    date: new Date().toISOString(),
    volumeMiB: mib,
    runs: Number(values.runs),
    method:
      'medians; running send = ferry sendBtrfs of a read-only snapshot node1 -> node2 over SSH; baseline = btrfs send | btrfs receive of the same snapshot between the two nodes’ filesystems on this machine; frozen increment = send -p of a second snapshot after changing 0, 10 or 100 MiB',
    runningSend: {
      ferryMs: Math.round(median(full.ferry)),
      plainMs: Math.round(median(full.plain)),
      ferryBytesPerSecond: rate(median(full.ferry)),
      plainBytesPerSecond: rate(median(full.plain)),
      ratio: Number((median(full.plain) / median(full.ferry)).toFixed(3)),
    },
    frozenIncrementMs: Object.fromEntries(
      Object.entries(incremental).map(([k, v]) => [`${k}MiB`, Math.round(median(v))]),
    ),
    runsMs: { full, incremental },
  };
  console.log('');
  console.log(
    table(
      ['WHAT', 'TIME (median)', 'RATE'],
      [
        [
          `running send, ferry (${mib} MiB)`,
          ms(result.runningSend.ferryMs),
          `${bytes(result.runningSend.ferryBytesPerSecond)}/s`,
        ],
        [
          `running send, plain btrfs send|receive`,
          ms(result.runningSend.plainMs),
          `${bytes(result.runningSend.plainBytesPerSecond)}/s`,
        ],
        ...[0, 10, 100].map((k) => [
          `frozen increment, ${k} MiB changed`,
          ms(result.frozenIncrementMs[`${k}MiB`]),
          '',
        ]),
      ],
    ),
  );
  console.log(`\nferry running send / plain btrfs: ${result.runningSend.ratio}`);
  await writeResults('filesystem', result);
}

void main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
