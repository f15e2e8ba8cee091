// The ferry command line. It speaks kubectl's language for Migrations and adds the local
// cluster's own verbs. Run `ferry --help` or `ferry COMMAND --help`.
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { nodePaths } from '../lib/paths.ts';
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { clusterDown, clusterUp, readClusterConfig, type UpOptions } from '../cluster/cluster.ts';
import { readyNodes } from '../lib/node-registry.ts';
import { errorMessage } from '../lib/errors.ts';
import { connect, type Client } from './client.ts';
import { demo, verify } from './demo.ts';
import { MIGRATION_COLUMNS, describe, migrationRow, table } from './format.ts';
import { parseManifest } from './manifest.ts';
import { waitForMigration } from './watch.ts';
import { drain } from './drain.ts';
import { drainPods } from './drain-pods.ts';
import { KubePodApi } from '../lib/kube/pods.ts';
import { podRunning } from '../lib/kube/pod-rules.ts';
import { loadKubeConfig } from '../lib/store/kube-store.ts';
import { API_VERSION, type Mode } from '../api/v1alpha1/migration.ts';
import type { ContainerInfo } from '../api/v1alpha1/job-results.ts';

const say = (line: string) => console.log(line);

const program = new Command('ferry')
  .description(
    'Live-migrate containers between nodes with CRIU, runc, btrfs and SSH.\nWith no Kubernetes at hand, `ferry cluster up` makes a local cluster of simulated nodes.',
  )
  .addOption(new Option('--cluster <name>', 'local cluster to use').env('FERRY_CLUSTER').default('local'))
  .addOption(
    new Option('--kubeconfig <file>', 'read and write Migrations in Kubernetes instead of the local cluster'),
  )
  .showHelpAfterError();

const cluster = () => program.opts<{ cluster: string }>().cluster;
const kubeconfig = () => program.opts<{ kubeconfig?: string }>().kubeconfig;

/** What a Kubernetes drain reads pods with. */
function podDrainDeps(client: Client, kubeconfigFile: string) {
  const pods = new KubePodApi(loadKubeConfig(kubeconfigFile));
  return {
    client,
    listPods: (node: string) => pods.onNode(node),
    podRunning: async (ns: string, name: string) => podRunning(await pods.get(ns, name)).running,
  };
}

async function withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
  const c = await connect(cluster(), kubeconfig());
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

function upOptions(o: {
  nodes: string;
  subnet: string;
  faultHooks?: boolean;
  diskGib: string;
  imagesGib: string;
  redisUrl?: string;
  metricsPort: string;
}): UpOptions {
  return {
    name: cluster(),
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

const addUpOptions = (c: Command) =>
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

const clusterCmd = program
  .command('cluster')
  .description('the local cluster: simulated nodes on this machine');
addUpOptions(clusterCmd.command('up').description('create or repair the local cluster (idempotent)'))
  .option('--fault-hooks', 'enable named fault-injection hooks (tests only)')
  .action(async (o) => void (await clusterUp(upOptions(o))));
clusterCmd
  .command('down')
  .description('remove every namespace, mount, process and file the cluster made (idempotent)')
  .action(async () => clusterDown(cluster(), say));
clusterCmd
  .command('status')
  .description('nodes and whether their agents are alive')
  .action(async () => {
    const cfg = await readClusterConfig(cluster());
    if (!cfg) return say(`cluster ${cluster()} is not up`);
    await withClient(async (c) => {
      const ready = await readyNodes(c.redis, cfg.name);
      say(
        table(
          ['NODE', 'ADDRESS', 'AGENT', 'CRIU'],
          cfg.nodes.map((n) => {
            const r = ready.get(n);
            return [
              n,
              r?.address ?? '-',
              r ? 'Ready' : 'NotReady',
              r ? (r.criuProblem ?? r.criuVersion) : '-',
            ];
          }),
        ),
      );
    });
  });

program
  .command('run <container>')
  .description('start the test workload as a runc container on a node')
  .requiredOption('--node <node>', 'node to run it on')
  .option('--memory-mib <n>', 'state the workload holds in memory', '64')
  .action(async (container: string, o: { node: string; memoryMib: string }) =>
    withClient(async (c) => {
      const info = (await c.bus.call(
        o.node,
        { kind: 'run', container, memoryMiB: Number(o.memoryMib), intervalMs: 20 },
        300_000,
      )) as ContainerInfo;
      say(`${container} running on ${o.node} (pid ${info.pid})`);
    }),
  );

program
  .command('ps')
  .description('containers on every node')
  .action(async () =>
    withClient(async (c) => {
      const rows: string[][] = [];
      for (const node of c.config.nodes)
        for (const ct of (await c.bus.call(node, { kind: 'list' })) as ContainerInfo[])
          rows.push([node, ct.id, ct.status, String(ct.pid ?? '-')]);
      say(table(['NODE', 'CONTAINER', 'STATUS', 'PID'], rows));
    }),
  );

program
  .command('verify <container>')
  .description('ask the test workload to check its memory and files')
  .requiredOption('--node <node>', 'node it runs on')
  .action(async (container: string, o: { node: string }) =>
    withClient(async (c) => {
      const r = await verify(c, o.node, container);
      say(r.line);
      if (!r.pass) process.exitCode = 1;
    }),
  );

program
  .command('drain <node>')
  .description(
    'move every workload off a node (one Migration each, within the controller limits); those that cannot move say why and keep running there. With --kubeconfig: every pod on a Kubernetes node, DaemonSet and static pods left alone',
  )
  .option('--to <node>', 'move everything to this node (default: the least busy other node, each)')
  .addOption(
    new Option('--strategy <mode>', 'memory strategy for every move').choices([
      'Auto',
      'StopAndCopy',
      'PreCopy',
      'PostCopy',
    ]),
  )
  .action(async (node: string, o: { to?: string; strategy?: Mode }) =>
    withClient(async (c) => {
      const kc = kubeconfig();
      const r = kc
        ? await drainPods(podDrainDeps(c, kc), node, { to: o.to, mode: o.strategy, say })
        : await drain(c, node, { to: o.to, mode: o.strategy, say });
      if (r.failed.length) process.exitCode = 1;
    }),
  );

program
  .command('export <container>')
  .description(
    'checkpoint a container into an archive in the layout Podman and the kubelet write (checkpoint/, spec.dump, config.dump, rootfs-diff.tar, …); it keeps running unless --stop',
  )
  .requiredOption('--node <node>', 'node it runs on')
  .requiredOption('-o, --output <file>', 'archive to write (mode 0600)')
  .option('--stop', 'remove the container once it is checkpointed')
  .action(async (container: string, o: { node: string; output: string; stop?: boolean }) =>
    withClient(async (c) => {
      const r = (await c.bus.call(o.node, { kind: 'export', container, stop: Boolean(o.stop) }, 600_000)) as {
        archive: string;
        bytes: number;
      };
      await copyFile(r.archive, o.output);
      await chmod(o.output, 0o600);
      await rm(r.archive, { force: true });
      say(
        `${container} on ${o.node} checkpointed to ${o.output} (${r.bytes} bytes)${o.stop ? '; container removed' : ''}`,
      );
    }),
  );

program
  .command('import <archive>')
  .description(
    'restore a container on a node from a checkpoint archive (checked first: layout, paths, links)',
  )
  .requiredOption('--node <node>', 'node to restore it on')
  .requiredOption('--name <container>', 'container id to give it')
  .action(async (archive: string, o: { node: string; name: string }) =>
    withClient(async (c) => {
      // The agent reads the archive from its node's own image folder, never from an arbitrary path.
      const staged = path.join(nodePaths(cluster(), o.node).imagesDir, `incoming-${o.name}.tar`);
      await copyFile(archive, staged).catch((err: Error) => {
        throw new Error(`cannot read ${archive}: ${err.message.split(',')[0]}`);
      });
      await chmod(staged, 0o600);
      try {
        await c.bus.call(o.node, { kind: 'import', container: o.name, archive: staged }, 600_000);
      } finally {
        await rm(staged, { force: true });
      }
      say(`${o.name} restored on ${o.node} from ${archive}`);
    }),
  );

program
  .command('apply')
  .description(
    'create Migrations from a manifest (validated locally first; nothing is created if any document is invalid)',
  )
  .requiredOption('-f, --filename <file>', 'YAML or JSON manifest, or - for standard input')
  .option('--wait', 'follow the migration until it ends')
  .action(async (o: { filename: string; wait?: boolean }) => {
    const text = o.filename === '-' ? await readStdin() : await readFile(o.filename, 'utf8');
    const docs = parseManifest(text, o.filename);
    await withClient(async (c) => {
      for (const m of docs) {
        const existing = await c.store.get(m.metadata.namespace, m.metadata.name);
        if (!existing) {
          await c.store.create(m);
          say(`migration.ferry.dev/${m.metadata.name} created`);
          continue;
        }
        // Only spec.abort may change once created; the store names any other field that differs.
        const updated = await c.store.updateSpec(m.metadata.namespace, m.metadata.name, m.spec);
        say(
          `migration.ferry.dev/${m.metadata.name} ${updated.metadata.generation !== existing.metadata.generation ? 'configured' : 'unchanged'}`,
        );
      }
      if (o.wait) {
        for (const m of docs) {
          const done = await waitForMigration(c, m.metadata.namespace, m.metadata.name, say);
          say(describe(done));
          if (done.status.phase !== 'Succeeded') process.exitCode = 1;
        }
      }
    });
  });

program
  .command('migrate <container>')
  .description(
    'move a workload now: a Migration from flags, validated like a manifest (the imperative twin of apply -f)',
  )
  .requiredOption('--from <node>', 'node the workload runs on')
  .option('--to <node>', 'target node (default: the least busy other node)')
  .option('--pod <pod>', 'Kubernetes: move this pod, all its containers (<container> names its main one)')
  .option('--pid <pid>', 'move the bare process tree rooted at this PID instead of a container')
  .addOption(
    new Option('--strategy <mode>', 'memory strategy').choices([
      'Auto',
      'StopAndCopy',
      'PreCopy',
      'PostCopy',
    ]),
  )
  .option('--max-downtime <duration>', 'longest acceptable freeze, used by Auto (e.g. 2s)')
  .option('--bandwidth <quantity>', 'transfer rate limit per second (e.g. 200Mi)')
  .addOption(
    new Option('--compression <c>', 'zstd on images and filesystem streams').choices([
      'Auto',
      'Zstd',
      'None',
    ]),
  )
  .option('--name <name>', "the Migration's name (default: <container>-<random>)")
  .option('-n, --namespace <ns>', "the Migration's namespace", 'default')
  .option('--wait', 'follow the migration until it ends, with its progress')
  .action(
    async (
      container: string,
      o: {
        from: string;
        to?: string;
        pod?: string;
        pid?: string;
        strategy?: Mode;
        maxDowntime?: string;
        bandwidth?: string;
        compression?: string;
        name?: string;
        namespace: string;
        wait?: boolean;
      },
    ) => {
      const strategy = {
        ...(o.strategy ? { mode: o.strategy } : {}),
        ...(o.maxDowntime ? { maxDowntime: o.maxDowntime } : {}),
        ...(o.bandwidth ? { bandwidth: o.bandwidth } : {}),
        ...(o.compression ? { compression: o.compression } : {}),
      };
      const doc = {
        apiVersion: API_VERSION,
        kind: 'Migration',
        metadata: {
          name: o.name ?? `${container.slice(0, 58)}-${randomBytes(2).toString('hex')}`,
          namespace: o.namespace,
        },
        spec: {
          source: {
            node: o.from,
            container,
            ...(o.pod ? { pod: o.pod } : {}),
            ...(o.pid ? { pid: Number(o.pid) } : {}),
          },
          target: o.to ? { node: o.to } : { nodeSelector: {} },
          ...(Object.keys(strategy).length ? { strategy } : {}),
        },
      };
      // The same checks as a manifest, so a bad flag is refused naming the field it sets.
      const [m] = parseManifest(JSON.stringify(doc), 'ferry migrate');
      await withClient(async (c) => {
        await c.store.create(m!);
        say(`migration.ferry.dev/${m!.metadata.name} created`);
        if (!o.wait) return;
        const done = await waitForMigration(c, m!.metadata.namespace, m!.metadata.name, say);
        say(describe(done));
        if (done.status.phase !== 'Succeeded') process.exitCode = 1;
      });
    },
  );

const output = new Option('-o, --output <format>', 'output format')
  .choices(['table', 'yaml', 'json'])
  .default('table');
program
  .command('get')
  .description('list Migrations (kubectl-style)')
  .argument('<resource>', 'migrations | migration')
  .argument('[name]')
  .option('-n, --namespace <ns>', 'namespace', 'default')
  .addOption(output)
  .action(async (resource: string, name: string | undefined, o: { namespace: string; output: string }) => {
    checkResource(resource);
    await withClient(async (c) => {
      const list = (await c.store.list(o.namespace)).filter((m) => !name || m.metadata.name === name);
      if (name && !list.length) throw new Error(`migration "${name}" not found`);
      if (o.output === 'json')
        say(JSON.stringify(name ? list[0] : { apiVersion: 'v1', kind: 'List', items: list }, null, 2));
      else if (o.output === 'yaml')
        say(stringify(name ? list[0] : { apiVersion: 'v1', kind: 'List', items: list }));
      else
        say(
          list.length
            ? table(
                MIGRATION_COLUMNS,
                list.map((m) => migrationRow(m)),
              )
            : `No migrations found in ${o.namespace} namespace.`,
        );
    });
  });

program
  .command('describe')
  .description('a Migration in detail, with its phase timeline')
  .argument('<resource>', 'migration')
  .argument('<name>')
  .option('-n, --namespace <ns>', 'namespace', 'default')
  .action(async (resource: string, name: string, o: { namespace: string }) => {
    checkResource(resource);
    await withClient(async (c) => {
      const m = await c.store.get(o.namespace, name);
      if (!m) throw new Error(`migration "${name}" not found`);
      say(describe(m, await c.store.events(o.namespace, name)));
    });
  });

program
  .command('delete')
  .description(
    'delete a Migration; one still running is first aborted and rolled back (its finalizer holds it until then)',
  )
  .argument('<resource>', 'migration')
  .argument('<name>')
  .option('-n, --namespace <ns>', 'namespace', 'default')
  .option('--wait', 'wait until it is gone')
  .action(async (resource: string, name: string, o: { namespace: string; wait?: boolean }) => {
    checkResource(resource);
    await withClient(async (c) => {
      const r = await c.store.delete(o.namespace, name);
      if (r === 'notfound') throw new Error(`migration "${name}" not found`);
      if (r === 'deleting') {
        say(`migration.ferry.dev "${name}" is being deleted: it is aborted and rolled back first`);
        if (!o.wait) return;
        while (await c.store.get(o.namespace, name)) await new Promise((res) => setTimeout(res, 200));
      }
      say(`migration.ferry.dev "${name}" deleted`);
    });
  });

program
  .command('abort')
  .description('abort a running Migration (sets spec.abort); after the freeze the source resumes')
  .argument('<name>')
  .option('-n, --namespace <ns>', 'namespace', 'default')
  .option('--wait', 'follow it until it ends')
  .action(async (name: string, o: { namespace: string; wait?: boolean }) =>
    withClient(async (c) => {
      const m = await c.store.get(o.namespace, name);
      if (!m) throw new Error(`migration "${name}" not found`);
      await c.store.updateSpec(o.namespace, name, { ...m.spec, abort: true });
      say(`migration.ferry.dev/${name} abort requested`);
      if (o.wait)
        say(
          describe(
            await waitForMigration(c, o.namespace, name, say),
            await c.store.events(o.namespace, name),
          ),
        );
    }),
  );

addUpOptions(
  program
    .command('demo')
    .description('bring up 2 nodes, move a stateful workload from node1 to node2, and show it continues'),
)
  .option('--memory-mib <n>', 'state the workload holds in memory', '256')
  .action(async (o) => {
    const ok = await demo({ up: upOptions({ ...o, nodes: '2' }), memoryMiB: Number(o.memoryMib), say });
    if (!ok) process.exitCode = 1;
  });

function checkResource(r: string): void {
  if (!['migration', 'migrations', 'mig'].includes(r))
    throw new Error(`unknown resource "${r}": ferry knows "migrations"`);
}

async function readStdin(): Promise<string> {
  let s = '';
  for await (const chunk of process.stdin) s += chunk;
  return s;
}

program
  .parseAsync()
  .then(() => process.exit(process.exitCode ?? 0))
  .catch((err: unknown) => {
    console.error(`error: ${errorMessage(err)}`);
    process.exit(1);
  });
