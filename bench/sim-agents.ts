// Simulated agents for the controller scale benchmark: one BullMQ worker per simulated node, a
// heartbeat like a real agent's, and for every job a plausible result after a plausible delay. No
// checkpointing happens: this measures the controller, not the data plane.
//   node --import tsx bench/sim-agents.ts --redis-url URL --cluster NAME --nodes 50
import { parseArgs } from 'node:util';
import { Worker } from 'bullmq';
import { JobSchema } from '../api/v1alpha1/jobs.ts';
import { parseJobResult } from '../api/v1alpha1/job-results.ts';
import { DELAY, simResult } from './sim-results.ts';
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

const nodes = Array.from({ length: Number(values.nodes) }, (_, i) => `sim${i + 1}`);
const workers = nodes.map(
  (node) =>
    new Worker(
      keyspace.agentQueue(node),
      async (bull) => {
        const job = JobSchema.parse(bull.data);
        await new Promise((r) => setTimeout(r, DELAY[job.kind]));
        const value = simResult(job.kind, 'container' in job ? String(job.container) : 'c');
        // A result the controller would refuse fails here, loudly, rather than every migration.
        const parsed = parseJobResult(job.kind, value);
        if (!parsed.ok) throw new Error(`simulated ${parsed.problem}`);
        return value;
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
