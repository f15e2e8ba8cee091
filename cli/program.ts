// What every command shares: the root `ferry` command with its global options, printing, and a
// connection to the chosen cluster (its Redis store and bus, or Kubernetes with --kubeconfig).
import { Command, Option } from 'commander';
import type { UpOptions } from '../cluster/cluster.ts';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readClusterConfig } from '../cluster/cluster.ts';
import { FerryError } from '../lib/errors.ts';
import { connect, connectKube, type Client } from './client.ts';
import { chooseTarget, type Target } from './target.ts';

export const say = (line: string): void => console.log(line);

export function rootCommand(): Command {
  return (
    new Command('ferry')
      .description(
        'Live-migrate containers between nodes with CRIU, runc, btrfs and SSH.\nWith no Kubernetes at hand, `ferry cluster up` makes a local cluster of simulated nodes.',
      )
      .addOption(new Option('--cluster <name>', 'local cluster to use').env('FERRY_CLUSTER').default('local'))
      .addOption(
        new Option(
          '--kubeconfig <file>',
          'talk to Kubernetes through this kubeconfig (without it: KUBECONFIG, then a local cluster that is up, then ~/.kube/config)',
        ),
      )
      .addOption(new Option('--context <name>', 'the kubeconfig context to use (Kubernetes)'))
      .showHelpAfterError()
      // Usage errors reach main.ts, which exits 2 (cli/exit-codes.ts); subcommands inherit this.
      .exitOverride()
  );
}

/** The global options as a command's action sees them, and a client built from them. */
export class Cli {
  constructor(readonly program: Command) {}

  cluster(): string {
    return this.program.opts<{ cluster: string }>().cluster;
  }

  /** The cluster this command talks to (cli/target.ts says how it is chosen). */
  async target(): Promise<Target> {
    const o = this.program.opts<{ kubeconfig?: string; context?: string; cluster: string }>();
    const source = this.program.getOptionValueSource('cluster');
    const t = chooseTarget(
      { ...o, clusterChosen: source === 'cli' || source === 'env' },
      { KUBECONFIG: process.env.KUBECONFIG },
      {
        localUp: (await readClusterConfig(o.cluster)) !== undefined,
        homeKubeconfig: existsSync(path.join(os.homedir(), '.kube', 'config')),
      },
    );
    if ('error' in t) throw new FerryError('ClusterUnavailable', t.error);
    return t;
  }

  async withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const t = await this.target();
    const c = t.kind === 'kube' ? connectKube(t.kubeconfig, t.context) : await connect(t.cluster);
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
  }

  /** A command's namespace: -n, else the kubeconfig context's, else default (as kubectl). */
  static namespace(flag: string | undefined, c: Client): string {
    return flag ?? c.kube?.namespace ?? 'default';
  }

  upOptions(o: {
    nodes: string;
    subnet: string;
    faultHooks?: boolean;
    diskGib: string;
    imagesGib: string;
    redisUrl?: string;
    metricsPort: string;
  }): UpOptions {
    return {
      name: this.cluster(),
      nodes: Number(o.nodes),
      subnet: o.subnet,
      faultHooks: Boolean(o.faultHooks),
      diskGiB: Number(o.diskGib),
      imagesGiB: Number(o.imagesGib),
      metricsPort: Number(o.metricsPort),
      ...(o.redisUrl ? { redisUrl: o.redisUrl } : {}),
      say,
    };
  }
}

/** The options `cluster up` and `demo` share: the shape of the local cluster. */
export const addUpOptions = (c: Command): Command =>
  c
    .option('--nodes <n>', 'number of simulated nodes', '2')
    .option(
      '--subnet <a.b.c>',
      "first three octets of the nodes' /24 (bridge is .1, nodeN is .(10+N))",
      '10.77.0',
    )
    .option('--disk-gib <n>', "size of each node's sparse btrfs disk", '8')
    .option('--images-gib <n>', "size limit of each node's image tmpfs", '4')
    .option('--redis-url <url>', 'use this Redis instead of starting one')
    .option(
      '--metrics-port <n>',
      'the controller serves Prometheus metrics at http://127.0.0.1:N/metrics (0: off)',
      '9477',
    );
