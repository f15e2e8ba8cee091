// Every command group, in the order `ferry --help` lists them.
import type { Cli } from '../program.ts';
import { clusterCommands } from './cluster.ts';
import { completionCommand } from './completion.ts';
import { createCommands } from './create.ts';
import { drainCommand } from './drain.ts';
import { nodeCommands } from './nodes.ts';
import { resourceCommands } from './resources.ts';
import { versionCommand } from './version.ts';
import { workloadCommands } from './workloads.ts';

export function addCommands(cli: Cli): void {
  for (const add of [
    clusterCommands,
    workloadCommands,
    drainCommand,
    nodeCommands,
    createCommands,
    resourceCommands,
    versionCommand,
    completionCommand,
  ])
    add(cli);
}
