// Real software moved between two local nodes with a client on the host connected throughout:
// Redis (images from scripts/build-image.sh) with a writer on one connection, nginx with a
// download in flight, and PostgreSQL under pgbench (4 connections held throughout; StopAndCopy). For each, ferry's measured downtime beside the longest pause the client saw,
// and the client's throughput before, during and after the move, each as a ratio to the throughput
// measured before the move in the same run. Writes bench/results/real-workloads.json.
//
//   node --import tsx bench/real-workloads.ts [--redis-keys 200000,1000000] [--web-mib 768]
//     [--pg-scale 10,50] [--runs 1]
import { writeResults } from './results-file.ts';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { connect, type Client } from '../cli/client.ts';
import { table } from '../cli/format.ts';
import { clusterDown } from '../cluster/cluster.ts';
import { REPO_ROOT } from '../cluster/processes.ts';
import { run } from '../lib/exec.ts';
import { FERRY_HOME, nodePaths } from '../lib/paths.ts';
import {
  connectRedisOnce,
  pacedDownload,
  pgbenchInit,
  pgbench,
  psql,
  redisWriter,
  type Timeline,
} from '../lib/workload-clients.ts';
import { migrate, unique } from '../test/helpers.ts';
import { BENCH_CLUSTER as CLUSTER, BENCH_SUBNET, upBenchCluster } from './bench-cluster.ts';

const { values } = parseArgs({
  options: {
    'redis-keys': { type: 'string', default: '200000,1000000' },
    'web-mib': { type: 'string', default: '768' },
    'pg-scale': { type: 'string', default: '10,50' },
    runs: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
  },
});
const ADDRESS = `${BENCH_SUBNET}.160`;
/** How long the client runs before the move and after it, to measure its throughput there. */
const WINDOW_MS = 3000;
/** The download's pace: below what the link carries, and slow enough that it lasts past the move. */
const WEB_RATE = 24 * 1024 * 1024;
/** How long pgbench runs: the window before, the move, and the window after, with room to spare. */
const PG_SECONDS = 45;

interface Result {
  workload: string;
  size: string;
  downtimeMs: number;
  clientPauseMs: number;
  unit: string;
  before: number;
  during: number;
  after: number;
  moveMs: number;
}

/** The client's view of one move: its throughput in the three windows and its longest pause. */
function measure(t: Timeline, start: number, end: number) {
  return {
    before: t.rate(start - WINDOW_MS, start),
    during: t.rate(start, end),
    after: t.rate(end, end + WINDOW_MS),
    clientPauseMs: t.longestGap(start, end + WINDOW_MS),
  };
}

async function moveRedis(c: Client, keys: number): Promise<Result> {
  const container = unique('redis');
  const image = `oci:${FERRY_HOME}/images/oci:redis`;
  await c.bus.call('node1', { kind: 'runImage', container, image, address: ADDRESS }, 180_000);
  const r = await connectRedisOnce(ADDRESS, 15_000);
  for (let i = 0; i < keys; i += 10_000) {
    const p = r.pipeline();
    for (let k = i; k < Math.min(keys, i + 10_000); k++) p.set(`key:${k}`, `value:${k}`.padEnd(64, '.'));
    await p.exec();
  }
  const usedMiB = Number(/used_memory:(\d+)/.exec(await r.info('memory'))?.[1] ?? 0) / 2 ** 20;
  const writer = redisWriter(r, new Map());
  await sleep(WINDOW_MS);
  const start = performance.now();
  const m = await migrate(c, unique('m-redis'), { node: 'node1', container }, 'node2');
  const end = performance.now();
  await sleep(WINDOW_MS);
  await writer.stop();
  r.disconnect();
  await c.bus.call('node2', { kind: 'remove', container });
  if (m.status.phase !== 'Succeeded' || writer.failures.length)
    throw new Error(`redis move: ${m.status.failureReason ?? writer.failures[0]}`);
  return {
    workload: 'redis',
    size: `${keys} keys (${usedMiB.toFixed(0)} MiB used)`,
    downtimeMs: m.status.migrationState?.downtimeMs ?? 0,
    unit: 'ops/s',
    moveMs: end - start,
    ...measure(writer.timeline, start, end),
  };
}

async function moveWeb(c: Client, mib: number): Promise<Result> {
  const container = unique('web');
  const image = `oci:${FERRY_HOME}/images/oci:nginx`;
  const volumes = [{ name: 'www', path: '/srv/www' }];
  await c.bus.call('node1', { kind: 'runImage', container, image, address: ADDRESS, volumes }, 180_000);
  const www = path.join(nodePaths(CLUSTER, 'node1').fsRoot, 'containers', container, 'volumes', 'www');
  const f = await open(path.join(www, 'big'), 'w');
  for (let i = 0; i < mib; i += 8) await f.write(randomBytes(8 << 20));
  await f.chmod(0o644); // nginx runs in a user namespace of its own: the file is others' to read
  await f.close();
  const pace = { rate: WEB_RATE };
  const dl = pacedDownload(`http://${ADDRESS}/big`, pace);
  await sleep(WINDOW_MS);
  const start = performance.now();
  const m = await migrate(c, unique('m-web'), { node: 'node1', container }, 'node2');
  const end = performance.now();
  const got = await dl.done;
  await c.bus.call('node2', { kind: 'remove', container });
  if (m.status.phase !== 'Succeeded' || got.bytes !== mib << 20)
    throw new Error(`web move: ${m.status.failureReason ?? `${got.bytes} bytes`}`);
  const MiB = 2 ** 20;
  const seen = measure(dl.timeline, start, end);
  return {
    workload: 'nginx',
    size: `${mib} MiB download`,
    downtimeMs: m.status.migrationState?.downtimeMs ?? 0,
    unit: 'MiB/s',
    moveMs: end - start,
    ...seen,
    before: seen.before / MiB,
    during: seen.during / MiB,
    after: seen.after / MiB,
  };
}

async function movePostgres(c: Client, scale: number): Promise<Result> {
  const container = unique('pg');
  const image = `oci:${FERRY_HOME}/images/oci:postgres`;
  await c.bus.call('node1', { kind: 'runImage', container, image, address: ADDRESS }, 180_000);
  await pgbenchInit(ADDRESS, scale);
  const dbMiB = Number(await psql(ADDRESS, "SELECT pg_database_size('postgres')")) / 2 ** 20;
  const logDir = await mkdtemp(path.join(tmpdir(), 'ferry-pgbench-'));
  try {
    const bench = pgbench(ADDRESS, { clients: 4, seconds: PG_SECONDS, logDir });
    await sleep(WINDOW_MS + 1000);
    const start = performance.now();
    const m = await migrate(c, unique('m-pg'), { node: 'node1', container }, 'node2', {
      strategy: { mode: 'StopAndCopy' },
    });
    const end = performance.now();
    const report = await bench.done;
    const timeline = await bench.timeline();
    await c.bus.call('node2', { kind: 'remove', container });
    if (m.status.phase !== 'Succeeded' || report.code !== 0 || report.aborted)
      throw new Error(`postgres move: ${m.status.failureReason ?? report.output.slice(-500)}`);
    if ((timeline.points.at(-1)?.at ?? 0) < end + WINDOW_MS)
      throw new Error(`pgbench ended before the window after the move: raise PG_SECONDS (${PG_SECONDS})`);
    return {
      workload: 'postgres',
      size: `pgbench scale ${scale} (${dbMiB.toFixed(0)} MiB database)`,
      downtimeMs: m.status.migrationState?.downtimeMs ?? 0,
      unit: 'tx/s',
      moveMs: end - start,
      ...measure(timeline, start, end),
    };
  } finally {
    await rm(logDir, { recursive: true, force: true });
  }
}

async function main() {
  for (const img of ['redis', 'nginx', 'postgres'])
    await run('bash', [path.join(REPO_ROOT, 'scripts/build-image.sh'), img]);
  await upBenchCluster();
  const c = await connect(CLUSTER);
  const results: Result[] = [];
  try {
    for (let i = 0; i < Number(values.runs); i++) {
      for (const keys of values['redis-keys'].split(',').map(Number)) results.push(await moveRedis(c, keys));
      results.push(await moveWeb(c, Number(values['web-mib'])));
      for (const scale of values['pg-scale'].split(',').map(Number))
        results.push(await movePostgres(c, scale));
    }
  } finally {
    await c.close();
    if (!values.keep) await clusterDown(CLUSTER);
  }
  const f = (n: number) => n.toFixed(0);
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : '-');
  console.log(
    table(
      [
        'WORKLOAD',
        'SIZE',
        'MOVE',
        'DOWNTIME',
        'CLIENT PAUSE',
        'PAUSE/DOWNTIME',
        'BEFORE',
        'DURING (×)',
        'AFTER (×)',
      ],
      results.map((r) => [
        r.workload,
        r.size,
        `${f(r.moveMs)} ms`,
        `${f(r.downtimeMs)} ms`,
        `${f(r.clientPauseMs)} ms`,
        ratio(r.clientPauseMs, r.downtimeMs),
        `${f(r.before)} ${r.unit}`,
        `${f(r.during)} (${ratio(r.during, r.before)})`,
        `${f(r.after)} (${ratio(r.after, r.before)})`,
      ]),
    ),
  );
  await writeResults('real-workloads', { date: new Date().toISOString(), results });
}

await main();
