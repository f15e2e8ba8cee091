// Controller scale: the real controller process against 50 simulated agents (bench/sim-agents.ts)
// and 100, then 1000 migrations, on a private Redis, once the controller is up and warm. Reports
// phase-transition overhead (time a step's job waited in the queue, plus time from its end to the
// next phase being written), split into the controller's own part (phase written -> jobs
// enqueued, job done -> next phase written) and the simulated agents' pickup, migrations per
// second, and the controller's peak memory, as a table and as JSON.
//   node --import tsx bench/controller-scale.ts [--counts 100,1000] [--nodes 50] [--max-running 100]
//     [--cpu-prof DIR]
import { writeResults } from './results-file.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Job as BullJob, Queue } from 'bullmq';
import { API_VERSION, TERMINAL_PHASES, type Phase, type StoredMigration } from '../api/v1alpha1/migration.ts';
import { bytes, ms, table } from '../cli/format.ts';
import { nodeEntry, REPO_ROOT } from '../cluster/processes.ts';
import { routeOf, sideNode } from '../controller/reconcile.ts';
import { RedisMigrationStore } from '../lib/store/redis-store.ts';
import { connectRedis } from '../lib/redis.ts';
import { keyspace } from '../lib/keyspace.ts';

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: '100,1000' },
    nodes: { type: 'string', default: '50' },
    'max-running': { type: 'string', default: '100' },
    'max-outbound-per-node': { type: 'string', default: '4' },
    'cpu-prof': { type: 'string' },
  },
});
const NODES = Number(values.nodes);
const CLUSTER = 'sim';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

async function rss(pid: number): Promise<{ now: number; peak: number }> {
  const st = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? 0) * 1024;
  return { now: kb('VmRSS'), peak: kb('VmHWM') };
}

/** Resolves once the process has printed a line containing `text` (its log is JSON lines). */
async function untilLine(p: ChildProcess, text: string): Promise<void> {
  let seen = '';
  for await (const chunk of p.stdout!) {
    seen = (seen + String(chunk)).slice(-64 * 1024);
    if (seen.includes(text)) return;
  }
  throw new Error(`the process ended before saying "${text}"`);
}

function start(argv: string[]): ChildProcess {
  const [cmd, ...args] = argv;
  return spawn(cmd!, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
}

async function runOnce(count: number) {
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-scale-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const redisServer = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const redis = connectRedis({ url });
  redis.on('error', () => undefined); // the server may still be starting: the pings below wait for it
  for (let i = 0; i < 100; i++)
    if (await redis.ping().catch(() => undefined)) break;
    else await sleep(50);

  const agents = start(
    nodeEntry('bench/sim-agents.ts', ['--redis-url', url, '--cluster', CLUSTER, '--nodes', String(NODES)]),
  );
  await once(agents.stdout!, 'data');
  const [node, ...rest] = nodeEntry('controller/main.ts', [
    '--cluster',
    CLUSTER,
    '--redis-url',
    url,
    '--max-running',
    values['max-running'],
    '--max-outbound-per-node',
    values['max-outbound-per-node'],
  ]);
  // --cpu-prof DIR: the controller writes a V8 CPU profile there when it exits (where its time went).
  const prof = values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : [];
  const controller = start([node!, ...prof, ...rest]);
  // Measured from a controller that is up and warm, as a long-running one is: it has said it runs,
  // and moved a few migrations (not counted) through every phase on every node's queue.
  await untilLine(controller, 'controller running');
  controller.stdout!.resume();
  const store = new RedisMigrationStore(redis, CLUSTER);
  const submit = async (prefix: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const src = `sim${(i % NODES) + 1}`;
      const dst = `sim${((i + 1) % NODES) + 1}`;
      await store.create({
        apiVersion: API_VERSION,
        kind: 'Migration',
        metadata: { name: `${prefix}${i}`, namespace: 'default' },
        spec: { source: { node: src, container: `c${i}` }, target: { node: dst } },
      });
    }
  };
  const settled = async (t0: number) => {
    for (;;) {
      const all = await store.list();
      if (all.every((m) => TERMINAL_PHASES.includes(m.status.phase))) return all;
      if (Date.now() - t0 > 20 * 60_000) throw new Error('the run did not finish within 20 minutes');
      await sleep(200);
    }
  };
  await submit('warm', NODES);
  for (const m of await settled(Date.now())) await store.delete(m.metadata.namespace, m.metadata.name);

  const t0 = Date.now();
  await submit('m', count);
  let peak = 0;
  const sampler = setInterval(
    () => void rss(controller.pid!).then((r) => (peak = Math.max(peak, r.now))),
    200,
  );
  const all: StoredMigration[] = await settled(t0).finally(() => clearInterval(sampler));
  peak = Math.max(peak, (await rss(controller.pid!)).peak);
  const t1 = Math.max(...all.map((m) => Date.parse(m.status.phaseTransitionTimestamps.at(-1)!.time)));

  // Overhead per phase with jobs: queue wait (enqueue -> picked up) + reconcile (job done -> next phase written).
  const queues = new Map<string, Queue>();
  const queue = (node: string) =>
    queues.get(node) ??
    queues
      .set(
        node,
        new Queue(keyspace.agentQueue(node), { connection: redis, prefix: keyspace.queuePrefix(CLUSTER) }),
      )
      .get(node)!;
  const queueWait: number[] = [];
  const reconcile: number[] = [];
  const total: number[] = [];
  // The controller's own share: phase written -> its jobs enqueued, plus job done -> next phase
  // written. The rest of the queue wait is the simulated agents' pickup (enqueued -> started).
  const own: number[] = [];
  const pickup: number[] = [];
  for (const m of all) {
    const ts = m.status.phaseTransitionTimestamps;
    for (let i = 0; i + 1 < ts.length; i++) {
      const phase = ts[i]!.phase as Phase;
      const steps = routeOf(m).steps(m, phase);
      if (!steps.length) continue;
      const jobs = (
        await Promise.all(
          steps.map(({ step: s, side }) =>
            BullJob.fromId(queue(sideNode(m, side)!), keyspace.jobId(m.metadata.uid, s)),
          ),
        )
      ).filter((j): j is BullJob => Boolean(j?.finishedOn && j.processedOn));
      if (jobs.length !== steps.length) continue;
      const entered = Date.parse(ts[i]!.time);
      const wait = Math.max(...jobs.map((j) => j.processedOn! - entered));
      const after = Date.parse(ts[i + 1]!.time) - Math.max(...jobs.map((j) => j.finishedOn!));
      const enqueued = Math.max(...jobs.map((j) => j.timestamp - entered));
      queueWait.push(wait);
      reconcile.push(after);
      total.push(wait + after);
      own.push(Math.max(0, enqueued) + after);
      pickup.push(Math.max(...jobs.map((j) => j.processedOn! - j.timestamp)));
    }
  }
  controller.kill('SIGTERM');
  agents.kill('SIGTERM');
  await Promise.all([once(controller, 'exit'), once(agents, 'exit')]);
  for (const q of queues.values()) await q.close();
  redis.disconnect();
  redisServer.kill('SIGTERM');
  await once(redisServer, 'exit');
  await rm(dir, { recursive: true, force: true });
  const succeeded = all.filter((m) => m.status.phase === 'Succeeded').length;
  // Figures from failed migrations measure nothing: say why the first one failed, and stop.
  const failed = all.find((m) => m.status.phase !== 'Succeeded');
  if (failed)
    throw new Error(
      `${all.length - succeeded} of ${count} simulated migrations did not succeed; ${failed.metadata.name}: ${failed.status.failureReason ?? failed.status.phase}`,
    );
  return {
    migrations: count,
    succeeded,
    transitions: total.length,
    overheadP50Ms: pct(total, 50),
    overheadP99Ms: pct(total, 99),
    queueWaitP50Ms: pct(queueWait, 50),
    queueWaitP99Ms: pct(queueWait, 99),
    reconcileP50Ms: pct(reconcile, 50),
    reconcileP99Ms: pct(reconcile, 99),
    controllerOwnP50Ms: pct(own, 50),
    controllerOwnP99Ms: pct(own, 99),
    agentPickupP50Ms: pct(pickup, 50),
    agentPickupP99Ms: pct(pickup, 99),
    seconds: Number(((t1 - t0) / 1000).toFixed(2)),
    migrationsPerSecond: Number((count / ((t1 - t0) / 1000)).toFixed(2)),
    controllerPeakRssBytes: peak,
  };
}

async function main() {
  const counts = values.counts.split(',').map(Number);
  console.log(
    `controller scale: ${NODES} simulated agents, limits ${values['max-running']} running / ${values['max-outbound-per-node']} out per node`,
  );
  const rows = [];
  for (const n of counts) {
    process.stdout.write(`  ${n} migrations… `);
    const r = await runOnce(n);
    console.log(`${r.succeeded}/${n} succeeded in ${r.seconds}s`);
    rows.push(r);
  }
  console.log('');
  console.log(
    table(
      [
        'MIGRATIONS',
        'SUCCEEDED',
        'OVERHEAD p50',
        'p99',
        'QUEUE p50',
        'p99',
        'RECONCILE p50',
        'p99',
        'CONTROLLER OWN p50',
        'p99',
        'AGENT PICKUP p50',
        'p99',
        'MIGRATIONS/s',
        'PEAK RSS',
      ],
      rows.map((r) => [
        String(r.migrations),
        String(r.succeeded),
        ms(r.overheadP50Ms),
        ms(r.overheadP99Ms),
        ms(r.queueWaitP50Ms),
        ms(r.queueWaitP99Ms),
        ms(r.reconcileP50Ms),
        ms(r.reconcileP99Ms),
        ms(r.controllerOwnP50Ms),
        ms(r.controllerOwnP99Ms),
        ms(r.agentPickupP50Ms),
        ms(r.agentPickupP99Ms),
        String(r.migrationsPerSecond),
        bytes(r.controllerPeakRssBytes),
      ]),
    ),
  );
  const first = rows[0]!;
  const last = rows.at(-1)!;
  const growth = {
    from: first.migrations,
    to: last.migrations,
    overheadP50: Number((last.overheadP50Ms / Math.max(1, first.overheadP50Ms)).toFixed(2)),
    overheadP99: Number((last.overheadP99Ms / Math.max(1, first.overheadP99Ms)).toFixed(2)),
    controllerOwnP99: Number((last.controllerOwnP99Ms / Math.max(1, first.controllerOwnP99Ms)).toFixed(2)),
    migrationsPerSecond: Number((last.migrationsPerSecond / first.migrationsPerSecond).toFixed(2)),
    peakRss: Number((last.controllerPeakRssBytes / first.controllerPeakRssBytes).toFixed(2)),
  };
  console.log(
    `\ngrowth ${growth.from} -> ${growth.to}: overhead p50 x${growth.overheadP50}, p99 x${growth.overheadP99}, throughput x${growth.migrationsPerSecond}, peak RSS x${growth.peakRss}`,
  );
  await writeResults('controller-scale', {
    benchmark: 'controller-scale',
    date: new Date().toISOString(),
    nodes: NODES,
    limits: {
      maxRunning: Number(values['max-running']),
      maxOutboundPerNode: Number(values['max-outbound-per-node']),
    },
    rows,
    growth,
  });
}

void main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
