// A container's own address on the cluster network, and moving it with the container.
//
// The container gets a network namespace of its own (/run/netns/<name>) joined to its node by a
// veth pair; its address is a /32 out of the nodes' subnet, routed to the veth, and the node
// answers ARP for it on the cluster network (proxy ARP). So the address lives where the route is.
// A move: lock the source's namespace (drop everything, so a frozen kernel neither acknowledges
// data the target will not have nor sends a FIN), withdraw its route, restore in a namespace the
// target prepared with the same address, then route it there and announce it with gratuitous ARP.
// CRIU sees the namespace as external (runc joins it by path) and repairs the TCP connections.
//
// A container in a user namespace of its own cannot join a namespace ferry made: CRIU dumps only
// namespaces its user namespace owns ("One or more namespaces doesn't belong to the target user
// namespace"). There runc makes the network namespace inside the user namespace, and ferry joins
// it to the node between `runc create` and `runc start`; at a restore CRIU makes it anew (runc has
// it restored empty) and ferry's CRIU action script joins it to the target node before the TCP
// connections come back, from what the agent wrote into the image folder (planRestoredNetns).
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exec, run } from '../../lib/exec.ts';
import { FERRY_OPT } from '../../lib/paths.ts';
import type { AgentContext } from '../context.ts';

/** scripts/netns-plumb.sh, as scripts/setup.sh installs it: the veth, the address, the route. */
const PLUMB = `${FERRY_OPT}/bin/ferry-netns-plumb`;
/** What scripts/criu-action.sh reads from a restore's image folder: namespace, veth, address. */
export const NETWORK_PLAN = 'ferry-network';

export const ADDRESS_ANNOTATION = 'ferry.dev/address';

export const netnsFor = (ctx: AgentContext, container: string): string =>
  `ferry-${ctx.config.cluster}-${ctx.config.node}-${container}`.slice(0, 200);
/** Interface names have 15 characters at most: a hash keeps them unique per container. */
const vethFor = (ctx: AgentContext, container: string): string =>
  `fv${createHash('sha256').update(`${ctx.config.node}/${container}`).digest('hex').slice(0, 10)}`;

const inNs = (ns: string, cmd: string, args: string[]) =>
  run('nsenter', [`--net=/run/netns/${ns}`, cmd, ...args]);

/** The address a bundle's container was given, if any (kept in its OCI spec's annotations). */
export async function addressOf(configFile: string): Promise<string | undefined> {
  const spec = JSON.parse(await readFile(configFile, 'utf8').catch(() => '{}')) as {
    annotations?: Record<string, string>;
  };
  return spec.annotations?.[ADDRESS_ANNOTATION];
}

/**
 * Gives the container's namespace `address` on this node: a namespace made here, or, with `pid`,
 * the one runc made for that (created, not yet started) container, named under /run/netns.
 * `routed` also routes the address here and announces it (a new container), else it stays dark
 * until `announce` (a migration's target, before restore).
 */
export async function createNetns(
  ctx: AgentContext,
  container: string,
  address: string,
  routed: boolean,
  pid?: number,
) {
  const ns = netnsFor(ctx, container);
  await removeNetns(ctx, container); // a retried restore starts afresh
  await run('ip', pid ? ['netns', 'attach', ns, String(pid)] : ['netns', 'add', ns]);
  await run(PLUMB, [ns, vethFor(ctx, container), address]);
  if (routed) await announce(ctx, container, address);
  return ns;
}

/**
 * Before the restore of a container whose network namespace CRIU makes (see above): what the
 * action script needs to join it to this node, in the image folder; none for any other container
 * (a plan that came with the images is never followed).
 */
export async function planRestoredNetns(
  ctx: AgentContext,
  container: string,
  address: string | undefined,
  imageDir: string,
): Promise<void> {
  const plan = path.join(imageDir, NETWORK_PLAN);
  await rm(plan, { force: true });
  if (!address) return;
  await removeNetns(ctx, container); // a retried restore starts afresh
  await writeFile(plan, `${netnsFor(ctx, container)} ${vethFor(ctx, container)} ${address}\n`, {
    mode: 0o600,
  });
}

/**
 * A namespace with loopback only, for a container whose engine gave it a network namespace of its
 * own (CRIU dumped it as external, so the restore must join one) but no address of ferry's.
 */
export async function createLoopbackNetns(ctx: AgentContext, container: string): Promise<string> {
  const ns = netnsFor(ctx, container);
  await removeNetns(ctx, container);
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

/** Routes the address to this node's veth and tells the cluster network (gratuitous ARP). */
export async function announce(ctx: AgentContext, container: string, address: string): Promise<void> {
  await run('ip', ['route', 'replace', `${address}/32`, 'dev', vethFor(ctx, container)]);
  await run('busybox', ['arping', '-U', '-c', '2', '-w', '1', '-I', 'eth0', '-s', address, address]);
}

/** Freezes the namespace's traffic and withdraws its route: the source while it is dumped. */
export async function lockNet(ctx: AgentContext, container: string, address: string): Promise<void> {
  const ns = netnsFor(ctx, container);
  for (const chain of ['INPUT', 'OUTPUT'])
    if ((await exec('nsenter', [`--net=/run/netns/${ns}`, 'iptables', '-C', chain, '-j', 'DROP'])).code !== 0)
      await inNs(ns, 'iptables', ['-I', chain, '-j', 'DROP']);
  await exec('ip', ['route', 'del', `${address}/32`]);
}

/** Rollback: the source's namespace carries traffic again, and the address comes back here. */
export async function unlockNet(ctx: AgentContext, container: string, address: string): Promise<void> {
  const ns = netnsFor(ctx, container);
  for (const chain of ['INPUT', 'OUTPUT'])
    while (
      (await exec('nsenter', [`--net=/run/netns/${ns}`, 'iptables', '-D', chain, '-j', 'DROP'])).code === 0
    );
  await announce(ctx, container, address);
}

/** Deletes the veth first (nothing can leave any more), then the namespace. Absent is fine. */
export async function removeNetns(ctx: AgentContext, container: string): Promise<void> {
  await exec('ip', ['link', 'del', vethFor(ctx, container)]);
  await exec('ip', ['netns', 'del', netnsFor(ctx, container)]);
}
