// `ferry cluster up|down|status`: the local cluster of simulated nodes, and `ferry demo`.
import { clusterDown, clusterUp, readClusterConfig } from '../../cluster/cluster.ts';
import { fencedNodes } from '../../lib/fences.ts';
import { readyNodes } from '../../lib/node-registry.ts';
import { FerryError } from '../../lib/errors.ts';
import { demo } from '../demo.ts';
import { demoRedis } from '../demo-redis.ts';
import { table } from '../format.ts';
import { addUpOptions, say, type Cli } from '../program.ts';

export function clusterCommands(cli: Cli): void {
  const cmd = cli.program
    .command('cluster')
    .description('the local cluster: simulated nodes on this machine');
  addUpOptions(cmd.command('up').description('create or repair the local cluster (idempotent)'))
    .option('--fault-hooks', 'enable named fault-injection hooks (tests only)')
    .option('--cuda-helper <path>', "the agents' CUDA helper (default: /opt/ferry/bin/ferry-cuda)")
    .option('--gpu-dev-dir <dir>', "where the agents find the nodes' NVIDIA device nodes (default: /dev)")
    .action(async (o: { cudaHelper?: string; gpuDevDir?: string } & Parameters<Cli['upOptions']>[0]) => {
      const gpu = {
        ...(o.cudaHelper ? { helper: [o.cudaHelper] } : {}),
        ...(o.gpuDevDir ? { devDir: o.gpuDevDir } : {}),
      };
      await clusterUp({ ...cli.upOptions(o), gpu });
    });
  cmd
    .command('down')
    .description('remove every namespace, mount, process and file the cluster made (idempotent)')
    .action(async () => clusterDown(cli.cluster(), say));
  cmd
    .command('status')
    .description('nodes and whether their agents are alive')
    .action(async () => {
      const cfg = await readClusterConfig(cli.cluster());
      if (!cfg) return say(`cluster ${cli.cluster()} is not up`);
      await cli.withClient(async (c) => {
        const [ready, fenced] = await Promise.all([
          readyNodes(c.redis, cfg.name),
          fencedNodes(c.redis, cfg.name),
        ]);
        const rows = cfg.nodes.map((n) => {
          const r = ready.get(n);
          const agent = (r ? 'Ready' : 'NotReady') + (fenced.has(n) ? ',Fenced' : '');
          return [n, r?.address ?? '-', agent, r ? (r.criuProblem ?? r.criuVersion) : '-'];
        });
        say(table(['NODE', 'ADDRESS', 'AGENT', 'CRIU'], rows));
      });
    });

  addUpOptions(
    cli.program
      .command('demo')
      .description(
        'bring up 2 nodes, move a stateful workload from node1 to node2, and show it continues; --image redis moves a real Redis with a client connected',
      ),
  )
    .option('--memory-mib <n>', 'state the test workload holds in memory', '256')
    .option('--image <name>', 'move real software instead of the test workload: redis')
    .action(async (o) => {
      const up = cli.upOptions({ ...o, nodes: '2' });
      if (o.image !== undefined && o.image !== 'redis')
        throw new FerryError('InvalidInput', `--image ${String(o.image)}: the demo knows redis`);
      const ok = o.image ? await demoRedis(up, say) : await demo({ up, memoryMiB: Number(o.memoryMib), say });
      if (!ok) process.exitCode = 1;
    });
}
