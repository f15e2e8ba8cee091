// Simulated agents for the controller scale benchmark: one BullMQ worker per simulated node, a
// heartbeat like a real agent's, and for every job a plausible result after a plausible delay. No
// checkpointing happens: this measures the controller, not the data plane.
//   node --import tsx bench/sim-agents.ts --redis-url URL --cluster NAME --nodes 50
import { parseArgs } from 'node:util';
import { Worker } from 'bullmq';
import { JobSchema, type Job } from '../api/v1alpha1/jobs.ts';
import { connectRedis, redisOptions } from '../lib/redis.ts';
import { keyspace } from '../lib/keyspace.ts';

const { values } = parseArgs({
  options: {
    'redis-url': { type: 'string' },
    cluster: { type: 'string' },
    nodes: { type: 'string', default: '50' },
  },
});
const redisConfig = { url: values['redis-url']! };
const cluster = values.cluster!;
const redis = connectRedis(redisConfig);

/** Milliseconds each step takes here: scaled-down versions of what real agents report. */
const DELAY: Record<Job['kind'], number> = {
  run: 1,
  runImage: 1,
  runBundle: 1,
  verify: 1,
  verifyFeatures: 1,
  selfRequest: 1,
  list: 1,
  export: 1,
  import: 1,
  remove: 1,
  exec: 1,
  logs: 1,
  preflightSource: 5,
  preflightTarget: 5,
  sync: 20,
  checkpoint: 30,
  transfer: 50,
  restore: 30,
  verifyTarget: 10,
  cleanupSource: 5,
  cleanupTarget: 5,
  podFreeze: 1,
  podThaw: 1,
  podSync: 20,
  podCheckpoint: 30,
  podSend: 50,
  podImport: 10,
  podRemoveImages: 1,
  podVolumes: 1,
  podCleanup: 1,
  resumeSource: 5,
  rollbackTarget: 5,
};

function result(job: Job): unknown {
  const now = new Date().toISOString();
  switch (job.kind) {
    case 'preflightSource':
      return {
        status: 'running',
        pid: 1,
        memoryBytes: 64 << 20,
        features: { memDirtyTrack: false, lazyPages: true },
      };
    case 'sync':
      return { bytes: 2 << 20, durationMs: DELAY.sync, files: 1 };
    case 'checkpoint':
      return { frozenAt: now, dumpMs: DELAY.checkpoint, imageBytes: 64 << 20 };
    case 'transfer':
      return { bytes: 64 << 20, durationMs: DELAY.transfer, files: 20 };
    case 'restore':
      return { restoredAt: now, restoreMs: DELAY.restore, pid: 1 };
    default:
      return { ok: true };
  }
}

const nodes = Array.from({ length: Number(values.nodes) }, (_, i) => `sim${i + 1}`);
const workers = nodes.map(
  (node) =>
    new Worker(
      keyspace.agentQueue(node),
      async (bull) => {
        const job = JobSchema.parse(bull.data);
        await new Promise((r) => setTimeout(r, DELAY[job.kind]));
        return result(job);
      },
      { connection: redisOptions(redisConfig), prefix: keyspace.queuePrefix(cluster), concurrency: 8 },
    ),
);
const beat = () =>
  Promise.all(
    nodes.map((node) =>
      redis.set(
        keyspace.node(cluster, node),
        JSON.stringify({
          node,
          address: '127.0.0.1',
          sshPort: 1,
          criuVersion: 'sim',
          criuProblem: null,
          pid: process.pid,
          time: new Date().toISOString(),
          labels: {},
        }),
        'PX',
        6000,
      ),
    ),
  );
await beat();
setInterval(() => void beat(), 2000);
process.on('SIGTERM', () => void Promise.all(workers.map((w) => w.close())).finally(() => process.exit(0)));
console.log('ready');
