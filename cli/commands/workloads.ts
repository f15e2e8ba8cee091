// Workloads on the local cluster's nodes: run, ps, verify, export and import (checkpoint archives).
import { chmod, copyFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '../client.ts';
import { FerryError } from '../../lib/errors.ts';
import { nodePaths } from '../../lib/paths.ts';
import { verify } from '../demo.ts';
import { table } from '../format.ts';
import { say, type Cli } from '../program.ts';

const collect = (v: string, all: string[]) => [...all, v];

function runCommand(cli: Cli): void {
  cli.program
    .command('run <container> [command...]')
    .description(
      "start a container on a node: from an OCI image with --image (like `podman run -d`; a command after -- replaces the image's Cmd) or an OCI runtime bundle with --bundle (like `runc run`), else ferry's test workload",
    )
    .option('--node <node>', 'node to run it on (default: the first node)')
    .option(
      '--image <ref>',
      'OCI image: containers-storage:NAME, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE (docker://REF needs a registry: untested here)',
    )
    .option(
      '--bundle <dir>',
      'an OCI runtime bundle (config.json and rootfs/) as runc runs it; its spec is read by the trust rule',
    )
    .option('--env <NAME=VALUE>', "environment over the image's own (repeatable)", collect, [])
    .option('--address <ip>', 'an address of its own on the cluster network, which moves with it')
    .option('--volume <name:/path>', 'a node-local volume, moved with it (repeatable)', collect, [])
    .option(
      '--host-users',
      "--image only: run as the host's users, not in a user namespace of its own (the default)",
    )
    .option('--memory-mib <n>', 'test workload only: state it holds in memory', '64')
    .addHelpText(
      'after',
      '\nExamples:\n  ferry run web --image oci-archive:/tmp/nginx.tar --address 10.77.0.50\n  ferry run db --image containers-storage:localhost/redis --volume data:/data -- redis-server --appendonly yes\n  ferry run w1 --node node1 --memory-mib 256',
    )
    .action(
      async (
        container: string,
        command: string[],
        o: {
          node?: string;
          image?: string;
          bundle?: string;
          hostUsers?: boolean;
          env: string[];
          address?: string;
          volume: string[];
          memoryMib: string;
        },
      ) =>
        cli.withClient(async (c) => {
          const node = o.node ?? c.config.nodes[0]!;
          if (o.image && o.bundle) throw new FerryError('InvalidInput', '--image or --bundle, not both');
          if (!o.image && !o.bundle) {
            if (command.length || o.env.length || o.volume.length || o.address)
              throw new FerryError(
                'InvalidInput',
                'a command, --env, --volume and --address need --image or --bundle',
              );
            const job = { kind: 'run' as const, container, memoryMiB: Number(o.memoryMib), intervalMs: 20 };
            const info = await c.bus.call(node, job, 300_000);
            return say(`${container} running on ${node} (pid ${info.pid})`);
          }
          const volumes = o.volume.map((v) => {
            const at = v.indexOf(':');
            if (at < 1) throw new FerryError('InvalidInput', `--volume ${v}: NAME:/path`);
            return { name: v.slice(0, at), path: v.slice(at + 1) };
          });
          if (o.bundle && command.length)
            throw new FerryError(
              'InvalidInput',
              "a bundle's config.json says what it runs: no command after --",
            );
          if (o.address) await refuseAddressInUse(c, o.address);
          const own = { container, env: o.env, volumes, ...(o.address ? { address: o.address } : {}) };
          const info = o.bundle
            ? await c.bus.call(node, { kind: 'runBundle', ...own, bundle: path.resolve(o.bundle) }, 600_000)
            : await c.bus.call(
                node,
                {
                  kind: 'runImage',
                  ...own,
                  image: o.image!,
                  hostUsers: Boolean(o.hostUsers),
                  ...(command.length ? { command } : {}),
                },
                600_000,
              );
          say(`${container} running on ${node} (pid ${info.pid}): ${(info.command ?? []).join(' ')}`);
        }),
    );
}

/**
 * An address belongs to one container: refused while a container on any node has it (two would
 * answer for it, and each move would take it from the other). A node whose agent is down cannot
 * say; it is passed over, as `ps` does.
 */
async function refuseAddressInUse(c: Client, address: string): Promise<void> {
  for (const node of c.config.nodes) {
    const listed = await c.bus.call(node, { kind: 'list' }).catch(() => []);
    const holder = listed.find((ct) => ct.address === address);
    if (holder)
      throw new FerryError(
        'InvalidInput',
        `--address ${address} is in use by container ${holder.id} on ${node}`,
      );
  }
}

/** A command as `ps` shows it: one line, cut at 40 characters. */
const shortCommand = (args: string[] | undefined): string => {
  const line = (args ?? []).join(' ').replace(/\s+/g, ' ');
  return line.length > 40 ? `${line.slice(0, 39)}…` : line || '-';
};

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
          if (!listed) rows.push([node, '-', 'agent not running', '-', '-', '-', '-']);
          for (const ct of listed ?? [])
            rows.push([
              node,
              ct.id,
              ct.status,
              String(ct.pid ?? '-'),
              ct.image ?? '-',
              ct.address ?? '-',
              shortCommand(ct.command),
            ]);
        }
        say(table(['NODE', 'CONTAINER', 'STATUS', 'PID', 'IMAGE', 'ADDRESS', 'COMMAND'], rows));
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
        if (r.gpu)
          say(
            `its CUDA state is in the archive: ${r.gpu.processes} process(es) checkpointed by the driver in ${r.gpu.checkpointMs} ms`,
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
        const r = await c.bus
          .call(
            o.node,
            { kind: 'import', container: o.name, archive: staged, ...(o.image ? { image: o.image } : {}) },
            600_000,
          )
          .finally(() => rm(staged, { force: true }));
        say(
          `${o.name} restored on ${o.node} from ${archive}` +
            (r.gpuRestoreMs !== undefined
              ? `; its GPU memory given back by the driver in ${r.gpuRestoreMs} ms`
              : ''),
        );
      }),
    );
}

/** The node a container runs on: the one given, else the one whose agent lists it. */
async function nodeOf(c: Client, container: string, node?: string): Promise<string> {
  if (node) return node;
  for (const n of c.config.nodes) {
    const listed = await c.bus.call(n, { kind: 'list' }).catch(() => []);
    if (listed.some((x) => x.id === container)) return n;
  }
  throw new FerryError('ContainerNotFound', `no node lists a container ${container} (ferry ps shows them)`);
}

function execCommand(cli: Cli): void {
  cli.program
    .command('exec <container> <command...>')
    .description(
      'run a command inside a running container (put it after --), print its output, exit with its code',
    )
    .option('--node <node>', 'node it runs on (default: the one that has it)')
    .action(async (container: string, command: string[], o: { node?: string }) =>
      cli.withClient(async (c) => {
        const node = await nodeOf(c, container, o.node);
        const r = await c.bus.call(node, { kind: 'exec', container, command }, 600_000);
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
        process.exitCode = r.code;
      }),
    );
}

/** Where a container that just left a node runs now (a move takes some seconds to settle). */
async function movedTo(c: Client, container: string): Promise<string> {
  for (let i = 0; ; i++)
    try {
      return await nodeOf(c, container);
    } catch (err) {
      if (i >= 120) throw err;
      await sleep(500);
    }
}

function logsCommand(cli: Cli): void {
  cli.program
    .command('logs <container>')
    .description(
      "a container's stdout and stderr, kept on its node and carried with it when it moves; -f follows it, across moves too",
    )
    .option('--node <node>', 'node it runs on (default: the one that has it)')
    .option('-f, --follow', 'keep printing what it writes, until interrupted')
    .action(async (container: string, o: { node?: string; follow?: boolean }) =>
      cli.withClient(async (c) => {
        let node = await nodeOf(c, container, o.node);
        let from = 0;
        for (;;) {
          const r = await c.bus.call(node, { kind: 'logs', container, from }).catch(async (err: unknown) => {
            // Moved while followed: the log came along, so the same offset reads on over there.
            if (!o.follow || !(err instanceof FerryError) || err.code !== 'ContainerNotFound') throw err;
            node = await movedTo(c, container);
            return { data: '', next: from, size: from };
          });
          process.stdout.write(Buffer.from(r.data, 'base64'));
          from = r.next;
          if (r.next < r.size) continue;
          if (!o.follow) return;
          await sleep(500);
        }
      }),
    );
}

function rmCommand(cli: Cli): void {
  cli.program
    .command('rm <container>')
    .description('stop and remove a container: its processes, root filesystem, volumes and address')
    .option('--node <node>', 'node it runs on (default: the one that has it)')
    .action(async (container: string, o: { node?: string }) =>
      cli.withClient(async (c) => {
        const node = await nodeOf(c, container, o.node);
        await c.bus.call(node, { kind: 'remove', container }, 120_000);
        say(`${container} removed from ${node}`);
      }),
    );
}

export function workloadCommands(cli: Cli): void {
  runCommand(cli);
  psCommand(cli);
  verifyCommand(cli);
  exportCommand(cli);
  importCommand(cli);
  logsCommand(cli);
  execCommand(cli);
  rmCommand(cli);
}
