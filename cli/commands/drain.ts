// `ferry drain NODE`: every workload off a node, or with --kubeconfig every pod of a Kubernetes node.
import type { KubeConfig } from '@kubernetes/client-node';
import { Option } from 'commander';
import { MODES, type Mode } from '../../api/v1alpha1/migration.ts';
import { podRunning } from '../../lib/kube/pod-rules.ts';
import { KubePodApi } from '../../lib/kube/pods.ts';
import { KubeNodeApi } from '../../lib/kube/nodes.ts';
import { parseDuration } from '../../api/v1alpha1/quantity.ts';
import { FerryError } from '../../lib/errors.ts';
import type { Client } from '../client.ts';
import { drainPods, UNCORDON, type PodDrainDeps, type Uncordon } from '../drain-pods.ts';
import { drain } from '../drain.ts';
import { say, type Cli } from '../program.ts';

/** What a Kubernetes drain reads and writes: pods, the Node (its cordon), the budgets. */
function podDrainDeps(client: Client, kc: KubeConfig): PodDrainDeps {
  const pods = new KubePodApi(kc);
  return {
    client,
    listPods: (node: string) => pods.onNode(node),
    podRunning: async (ns: string, name: string) => podRunning(await pods.get(ns, name)).running,
    nodes: new KubeNodeApi(kc),
  };
}

export function drainCommand(cli: Cli): void {
  cli.program
    .command('drain <node>')
    .description(
      'move every workload off a node (one Migration each, within the controller limits); those that cannot move say why and keep running there. On Kubernetes, as kubectl drain: the Node cordoned first, every pod on it moved but DaemonSet and static pods, a pod under a PodDisruptionBudget only while the budget allows a disruption',
    )
    .option('--to <node>', 'move everything to this node (default: the least busy other node, each)')
    .addOption(new Option('--strategy <mode>', 'memory strategy for every move').choices(MODES))
    .option(
      '--timeout <duration>',
      'give up waiting after this long (e.g. 10m): pods still waiting for a budget are not moved, moves under way go on (default 30m)',
    )
    .addOption(
      new Option(
        '--uncordon <when>',
        'Kubernetes: give the Node back to the scheduler at the end: never (it stays cordoned, as after kubectl drain), failed (only if something could not move), always',
      )
        .choices(UNCORDON)
        .default('never'),
    )
    .action(
      async (node: string, o: { to?: string; strategy?: Mode; timeout?: string; uncordon: Uncordon }) => {
        const timeoutMs = o.timeout === undefined ? undefined : parseDuration(o.timeout);
        if (o.timeout !== undefined && !timeoutMs)
          throw new FerryError(
            'InvalidInput',
            `--timeout: ${JSON.stringify(o.timeout)} is not a duration (e.g. 90s, 10m)`,
          );
        await cli.withClient(async (c) => {
          const r = c.kube
            ? await drainPods(podDrainDeps(c, c.kube.kc), node, {
                to: o.to,
                mode: o.strategy,
                say,
                timeoutMs,
                uncordon: o.uncordon,
              })
            : await drain(c, node, { to: o.to, mode: o.strategy, say, ...(timeoutMs ? { timeoutMs } : {}) });
          if (r.failed.length) process.exitCode = 1;
        });
      },
    );
}
