// Workloads on the local cluster's nodes: run, ps, verify, export and import (checkpoint archives).
import { chmod, copyFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../lib/errors.ts';
import { nodePaths } from '../../lib/paths.ts';
import { verify } from '../demo.ts';
import { table } from '../format.ts';
import { say, type Cli } from '../program.ts';

function runCommand(cli: Cli): void {
  cli.program
    .command('run <container>')
    .description('start the test workload as a runc container on a node')
    .requiredOption('--node <node>', 'node to run it on')
    .option('--memory-mib <n>', 'state the workload holds in memory', '64')
    .action(async (container: string, o: { node: string; memoryMib: string }) =>
      cli.withClient(async (c) => {
        const job = { kind: 'run' as const, container, memoryMiB: Number(o.memoryMib), intervalMs: 20 };
        const info = await c.bus.call(o.node, job, 300_000);
        say(`${container} running on ${o.node} (pid ${info.pid})`);
      }),
    );
}

function psCommand(cli: Cli): void {
  cli.program
    .command('ps')
    .description('containers on every node')
    .action(async () =>
      cli.withClient(async (c) => {
        const rows: string[][] = [];
        for (const node of c.config.nodes) {
          // A node whose agent is down is listed as such; the others are still shown.
          const listed = await c.bus.call(node, { kind: 'list' }).catch((err: unknown) => {
            if (err instanceof FerryError && err.code === 'NodeNotFound') return undefined;
            throw err;
          });
          if (!listed) rows.push([node, '-', 'agent not running', '-']);
          for (const ct of listed ?? []) rows.push([node, ct.id, ct.status, String(ct.pid ?? '-')]);
        }
        say(table(['NODE', 'CONTAINER', 'STATUS', 'PID'], rows));
      }),
    );
}

function verifyCommand(cli: Cli): void {
  cli.program
    .command('verify <container>')
    .description('ask the test workload to check its memory and files')
    .requiredOption('--node <node>', 'node it runs on')
    .action(async (container: string, o: { node: string }) =>
      cli.withClient(async (c) => {
        const r = await verify(c, o.node, container);
        say(r.line);
        if (!r.pass) process.exitCode = 1;
      }),
    );
}

function exportCommand(cli: Cli): void {
  cli.program
    .command('export <container>')
    .description(
      "checkpoint a container into an archive in Podman's layout (checkpoint/, spec.dump, config.dump, rootfs-diff.tar, deleted.files), which `podman container restore --import` reads once it has the base image the export names; the container keeps running unless --stop",
    )
    .requiredOption('--node <node>', 'node it runs on')
    .requiredOption('-o, --output <file>', 'archive to write (mode 0600)')
    .option('--stop', 'remove the container once it is checkpointed')
    .action(async (container: string, o: { node: string; output: string; stop?: boolean }) =>
      cli.withClient(async (c) => {
        const r = await c.bus.call(o.node, { kind: 'export', container, stop: Boolean(o.stop) }, 600_000);
        await copyFile(r.archive, o.output);
        await chmod(o.output, 0o600);
        await rm(r.archive, { force: true });
        say(
          `${container} on ${o.node} checkpointed to ${o.output} (${r.bytes} bytes)${o.stop ? '; container removed' : ''}`,
        );
        say(
          `its root is a diff over ${r.baseImage.name}; for Podman: skopeo copy ${r.baseImage.ref} containers-storage:${r.baseImage.name}`,
        );
      }),
    );
}

function importCommand(cli: Cli): void {
  cli.program
    .command('import <archive>')
    .description(
      "restore a container on a node from a checkpoint archive, ferry's or Podman's (plain, gzip or zstd), checked before anything is unpacked; the container gets ferry's own spec, never the archive's",
    )
    .requiredOption('--node <node>', 'node to restore it on')
    .requiredOption('--name <container>', 'container id to give it')
    .option(
      '--image <ref>',
      "the image below a Podman archive's rootfs diff (containers-storage:NAME, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE); default: containers-storage:<the archive's rootfsImageID>",
    )
    .action(async (archive: string, o: { node: string; name: string; image?: string }) =>
      cli.withClient(async (c) => {
        // The agent reads the archive from its node's own image folder, never from an arbitrary path.
        const staged = path.join(nodePaths(cli.cluster(), o.node).imagesDir, `incoming-${o.name}.tar`);
        await copyFile(archive, staged).catch((err: Error) => {
          throw new Error(`cannot read ${archive}: ${err.message.split(',')[0]}`);
        });
        await chmod(staged, 0o600);
        try {
          await c.bus.call(
            o.node,
            { kind: 'import', container: o.name, archive: staged, ...(o.image ? { image: o.image } : {}) },
            600_000,
          );
        } finally {
          await rm(staged, { force: true });
        }
        say(`${o.name} restored on ${o.node} from ${archive}`);
      }),
    );
}

export function workloadCommands(cli: Cli): void {
  runCommand(cli);
  psCommand(cli);
  verifyCommand(cli);
  exportCommand(cli);
  importCommand(cli);
}
