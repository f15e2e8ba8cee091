// What every command shares: the root `ferry` command with its global options, printing, and a
// connection to the chosen cluster (its Redis store and bus, or Kubernetes with --kubeconfig).
import { Command, Option } from 'commander';
import type { UpOptions } from '../cluster/cluster.ts';
import { connect, type Client } from './client.ts';

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
          'read and write Migrations in Kubernetes instead of the local cluster',
        ),
      )
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

  kubeconfig(): string | undefined {
    return this.program.opts<{ kubeconfig?: string }>().kubeconfig;
  }

  async withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    const c = await connect(this.cluster(), this.kubeconfig());
    try {
      return await fn(c);
    } finally {
      await c.close();
    }
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
