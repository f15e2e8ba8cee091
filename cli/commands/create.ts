// Creating Migrations: `apply -f` from a manifest, and `migrate`, its imperative twin from flags.
// Both go through the manifest's checks, so a bad field or flag is named before anything is stored.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Option } from 'commander';
import { API_VERSION, COMPRESSIONS, MODES, type Migration, type Mode } from '../../api/v1alpha1/migration.ts';
import { FerryError } from '../../lib/errors.ts';
import { requireLiveNode } from '../../lib/node-registry.ts';
import { KubePodApi } from '../../lib/kube/pods.ts';
import type { Client } from '../client.ts';
import { describe } from '../format.ts';
import { parseManifest } from '../manifest.ts';
import { Cli, say } from '../program.ts';
import { waitForMigration } from '../watch.ts';

/** Follows a Migration to its end with its progress, then describes it; a failure exits 1. */
async function follow(c: Client, namespace: string, name: string): Promise<void> {
  const done = await waitForMigration(c, namespace, name, say);
  say(describe(done));
  if (done.status.phase !== 'Succeeded') process.exitCode = 1;
}

async function readStdin(): Promise<string> {
  let s = '';
  for await (const chunk of process.stdin) s += chunk;
  return s;
}

/** kubectl's --dry-run: none (do it), client (check here, send nothing), server (the store checks, keeps nothing). */
const dryRunOption = () =>
  new Option(
    '--dry-run <strategy>',
    'client: check here and send nothing; server: the cluster checks it too and keeps nothing',
  )
    .choices(['none', 'client', 'server'])
    .default('none');
type DryRun = 'none' | 'client' | 'server';
const dryNote = (d: DryRun) => (d === 'none' ? '' : ` (${d} dry run)`);

function applyCommand(cli: Cli): void {
  cli.program
    .command('apply')
    .description(
      'create Migrations from a manifest (validated locally first; nothing is created if any document is invalid)',
    )
    .requiredOption('-f, --filename <file>', 'YAML or JSON manifest, or - for standard input')
    .option('--wait', 'follow the migration until it ends')
    .addOption(dryRunOption())
    .action(async (o: { filename: string; wait?: boolean; dryRun: DryRun }) => {
      const text = o.filename === '-' ? await readStdin() : await readFile(o.filename, 'utf8');
      const docs = parseManifest(text, o.filename);
      if (o.dryRun === 'client') {
        for (const m of docs) say(`migration.ferry.dev/${m.metadata.name} created${dryNote(o.dryRun)}`);
        return;
      }
      await cli.withClient(async (c) => {
        const dryRun = o.dryRun === 'server';
        for (const m of docs) {
          const existing = await c.store.get(m.metadata.namespace, m.metadata.name);
          if (!existing) {
            await c.store.create(m, { dryRun });
            say(`migration.ferry.dev/${m.metadata.name} created${dryNote(o.dryRun)}`);
            continue;
          }
          if (dryRun) {
            say(
              `migration.ferry.dev/${m.metadata.name} exists: only spec.abort may change${dryNote(o.dryRun)}`,
            );
            continue;
          }
          // Only spec.abort may change once created; the store names any other field that differs.
          const updated = await c.store.updateSpec(m.metadata.namespace, m.metadata.name, m.spec);
          const changed = updated.metadata.generation !== existing.metadata.generation;
          say(`migration.ferry.dev/${m.metadata.name} ${changed ? 'configured' : 'unchanged'}`);
        }
        if (o.wait && !dryRun) for (const m of docs) await follow(c, m.metadata.namespace, m.metadata.name);
      });
    });
}

interface MigrateFlags {
  from?: string;
  to?: string;
  pod?: string;
  pid?: string;
  strategy?: Mode;
  maxDowntime?: string;
  overBudget?: string;
  bandwidth?: string;
  compression?: string;
  name?: string;
  namespace?: string;
  wait?: boolean;
  dryRun: DryRun;
}

/** The Migration the flags describe, before any check: the manifest reader checks it. */
function migrationFromFlags(container: string, o: MigrateFlags & { from: string; namespace: string }) {
  const strategy = {
    ...(o.strategy ? { mode: o.strategy } : {}),
    ...(o.maxDowntime ? { maxDowntime: o.maxDowntime } : {}),
    ...(o.overBudget ? { overBudget: o.overBudget } : {}),
    ...(o.bandwidth ? { bandwidth: o.bandwidth } : {}),
    ...(o.compression ? { compression: o.compression } : {}),
  };
  return {
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
}

/**
 * Before anything is created: the nodes the flags name have live agents, and the container runs on
 * its source node. A Migration that could only fail later is refused now, and nothing is stored.
 */
async function precheck(c: Client, m: Migration): Promise<void> {
  for (const node of [m.spec.source.node, m.spec.target.node])
    if (node) await requireLiveNode(c.redis, c.config.name, node);
  if (m.spec.source.pod || m.spec.source.pid) return; // the pod's API or the node's /proc says, in preflight
  const containers = await c.bus.call(m.spec.source.node, { kind: 'list' });
  if (!containers.some((x) => x.id === m.spec.source.container))
    throw new FerryError(
      'ContainerNotFound',
      `no container ${m.spec.source.container} on ${m.spec.source.node} (it has: ${containers.map((x) => x.id).join(', ') || 'none'})`,
    );
}

/**
 * On Kubernetes, `ferry migrate POD`: the pod (the argument, or --pod) read from the API gives the
 * source node when --from is not given, and its first container when the argument named the pod,
 * as `virtctl migrate VM` finds the VM's node.
 */
async function podSource(c: Client, arg: string, o: MigrateFlags, namespace: string) {
  const name = o.pod ?? arg;
  const pod = await new KubePodApi(c.kube!.kc).get(namespace, name);
  if (!pod) throw new FerryError('ContainerNotFound', `no pod ${name} in namespace ${namespace}`);
  const node = pod.spec?.nodeName;
  if (!node) throw new FerryError('ContainerNotFound', `pod ${namespace}/${name} is not on a node yet`);
  if (o.from && o.from !== node)
    throw new FerryError('InvalidInput', `--from ${o.from}: pod ${namespace}/${name} runs on ${node}`);
  return { from: node, pod: name, container: o.pod ? arg : pod.spec!.containers[0]!.name };
}

function migrateCommand(cli: Cli): void {
  cli.program
    .command('migrate <name>')
    .description(
      'move a workload now: a Migration from flags, validated like a manifest (the imperative twin of apply -f). <name> is a container of a local cluster, or on Kubernetes a pod, whose node ferry finds',
    )
    .option('--from <node>', 'node the workload runs on (required on a local cluster; a pod says its own)')
    .option('--to <node>', 'target node (default: the least busy other node)')
    .option('--pod <pod>', 'Kubernetes: move this pod, all its containers (<name> then names its main one)')
    .option('--pid <pid>', 'move the bare process tree rooted at this PID instead of a container')
    .addOption(new Option('--strategy <mode>', 'memory strategy').choices(MODES))
    .option('--max-downtime <duration>', 'longest acceptable freeze, used by Auto (e.g. 2s)')
    .addOption(
      new Option(
        '--over-budget <choice>',
        'Auto, when no mode fits --max-downtime: Refuse before anything is frozen, or Proceed with a longer freeze',
      ).choices(['Refuse', 'Proceed']),
    )
    .option('--bandwidth <quantity>', 'transfer rate limit per second (e.g. 200Mi)')
    .addOption(new Option('--compression <c>', 'zstd on images and filesystem streams').choices(COMPRESSIONS))
    .option('--name <name>', "the Migration's name (default: <name>-<random>)")
    .option(
      '-n, --namespace <ns>',
      "the Migration's namespace (default: the kubeconfig context's, else default)",
    )
    .option('--wait', 'follow the migration until it ends, with its progress')
    .addOption(dryRunOption())
    .action(async (arg: string, o: MigrateFlags) => {
      const parse = (from: string, namespace: string, extra: { container?: string; pod?: string } = {}) => {
        const flags = { ...o, from, namespace, ...(extra.pod ? { pod: extra.pod } : {}) };
        // The same checks as a manifest, so a bad flag is refused naming the field it sets.
        return parseManifest(
          JSON.stringify(migrationFromFlags(extra.container ?? arg, flags)),
          'ferry migrate',
        )[0]!;
      };
      if (o.dryRun === 'client') {
        if (!o.from)
          throw new FerryError(
            'InvalidInput',
            "--dry-run=client needs --from (finding a pod's node asks the cluster: use --dry-run=server)",
          );
        const m = parse(o.from, o.namespace ?? 'default');
        say(`migration.ferry.dev/${m.metadata.name} created${dryNote(o.dryRun)}`);
        return;
      }
      await cli.withClient(async (c) => {
        const namespace = Cli.namespace(o.namespace, c);
        let m;
        if (c.kube && !o.pid) {
          const src = await podSource(c, arg, o, namespace);
          m = parse(src.from, namespace, { container: src.container, pod: src.pod });
        } else {
          if (!o.from)
            throw new FerryError(
              'InvalidInput',
              '--from: which node the workload runs on (required on a local cluster)',
            );
          m = parse(o.from, namespace);
          await precheck(c, m);
        }
        await c.store.create(m, { dryRun: o.dryRun === 'server' });
        say(`migration.ferry.dev/${m.metadata.name} created${dryNote(o.dryRun)}`);
        if (o.wait && o.dryRun === 'none') await follow(c, m.metadata.namespace, m.metadata.name);
      });
    });
}

export function createCommands(cli: Cli): void {
  applyCommand(cli);
  migrateCommand(cli);
}
