// Creating Migrations: `apply -f` from a manifest, and `migrate`, its imperative twin from flags.
// Both go through the manifest's checks, so a bad field or flag is named before anything is stored.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Option } from 'commander';
import { API_VERSION, COMPRESSIONS, MODES, type Migration, type Mode } from '../../api/v1alpha1/migration.ts';
import { FerryError } from '../../lib/errors.ts';
import { requireLiveNode } from '../../lib/node-registry.ts';
import type { Client } from '../client.ts';
import { describe } from '../format.ts';
import { parseManifest } from '../manifest.ts';
import { say, type Cli } from '../program.ts';
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

function applyCommand(cli: Cli): void {
  cli.program
    .command('apply')
    .description(
      'create Migrations from a manifest (validated locally first; nothing is created if any document is invalid)',
    )
    .requiredOption('-f, --filename <file>', 'YAML or JSON manifest, or - for standard input')
    .option('--wait', 'follow the migration until it ends')
    .action(async (o: { filename: string; wait?: boolean }) => {
      const text = o.filename === '-' ? await readStdin() : await readFile(o.filename, 'utf8');
      const docs = parseManifest(text, o.filename);
      await cli.withClient(async (c) => {
        for (const m of docs) {
          const existing = await c.store.get(m.metadata.namespace, m.metadata.name);
          if (!existing) {
            await c.store.create(m);
            say(`migration.ferry.dev/${m.metadata.name} created`);
            continue;
          }
          // Only spec.abort may change once created; the store names any other field that differs.
          const updated = await c.store.updateSpec(m.metadata.namespace, m.metadata.name, m.spec);
          const changed = updated.metadata.generation !== existing.metadata.generation;
          say(`migration.ferry.dev/${m.metadata.name} ${changed ? 'configured' : 'unchanged'}`);
        }
        if (o.wait) for (const m of docs) await follow(c, m.metadata.namespace, m.metadata.name);
      });
    });
}

interface MigrateFlags {
  from: string;
  to?: string;
  pod?: string;
  pid?: string;
  strategy?: Mode;
  maxDowntime?: string;
  overBudget?: string;
  bandwidth?: string;
  compression?: string;
  name?: string;
  namespace: string;
  wait?: boolean;
}

/** The Migration the flags describe, before any check: the manifest reader checks it. */
function migrationFromFlags(container: string, o: MigrateFlags) {
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

function migrateCommand(cli: Cli): void {
  cli.program
    .command('migrate <container>')
    .description(
      'move a workload now: a Migration from flags, validated like a manifest (the imperative twin of apply -f)',
    )
    .requiredOption('--from <node>', 'node the workload runs on')
    .option('--to <node>', 'target node (default: the least busy other node)')
    .option('--pod <pod>', 'Kubernetes: move this pod, all its containers (<container> names its main one)')
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
    .option('--name <name>', "the Migration's name (default: <container>-<random>)")
    .option('-n, --namespace <ns>', "the Migration's namespace", 'default')
    .option('--wait', 'follow the migration until it ends, with its progress')
    .action(async (container: string, o: MigrateFlags) => {
      // The same checks as a manifest, so a bad flag is refused naming the field it sets.
      const [m] = parseManifest(JSON.stringify(migrationFromFlags(container, o)), 'ferry migrate');
      await cli.withClient(async (c) => {
        await precheck(c, m!);
        await c.store.create(m!);
        say(`migration.ferry.dev/${m!.metadata.name} created`);
        if (o.wait) await follow(c, m!.metadata.namespace, m!.metadata.name);
      });
    });
}

export function createCommands(cli: Cli): void {
  applyCommand(cli);
  migrateCommand(cli);
}
