// `ferry drain NODE`: every workload off a node, or with --kubeconfig every pod of a Kubernetes node.
import { Option } from 'commander';
import { MODES, type Mode } from '../../api/v1alpha1/migration.ts';
import { podRunning } from '../../lib/kube/pod-rules.ts';
import { KubePodApi } from '../../lib/kube/pods.ts';
import { loadKubeConfig } from '../../lib/store/kube-store.ts';
import type { Client } from '../client.ts';
import { drainPods } from '../drain-pods.ts';
import { drain } from '../drain.ts';
import { say, type Cli } from '../program.ts';

/** What a Kubernetes drain reads pods with. */
function podDrainDeps(client: Client, kubeconfigFile: string) {
  const pods = new KubePodApi(loadKubeConfig(kubeconfigFile));
  return {
    client,
    listPods: (node: string) => pods.onNode(node),
    podRunning: async (ns: string, name: string) => podRunning(await pods.get(ns, name)).running,
  };
}

export function drainCommand(cli: Cli): void {
  cli.program
    .command('drain <node>')
    .description(
      'move every workload off a node (one Migration each, within the controller limits); those that cannot move say why and keep running there. With --kubeconfig: every pod on a Kubernetes node, DaemonSet and static pods left alone',
    )
    .option('--to <node>', 'move everything to this node (default: the least busy other node, each)')
    .addOption(new Option('--strategy <mode>', 'memory strategy for every move').choices(MODES))
    .action(async (node: string, o: { to?: string; strategy?: Mode }) =>
      cli.withClient(async (c) => {
        const kc = cli.kubeconfig();
        const r = kc
          ? await drainPods(podDrainDeps(c, kc), node, { to: o.to, mode: o.strategy, say })
          : await drain(c, node, { to: o.to, mode: o.strategy, say });
        if (r.failed.length) process.exitCode = 1;
      }),
    );
}
