// A container's own address on the cluster network, and moving it with the container.
//
// The container gets a network namespace of its own (/run/netns/<name>) joined to its node by a
// veth pair; its address is a /32 out of the nodes' subnet, routed to the veth, and the node
// answers ARP for it on the cluster network (proxy ARP). So the address lives where the route is.
// A move: lock the source's namespace (drop everything, so a frozen kernel neither acknowledges
// data the target will not have nor sends a FIN), withdraw its route, restore in a namespace the
// target prepared with the same address, then route it there and announce it with gratuitous ARP.
// CRIU sees the namespace as external (runc joins it by path) and repairs the TCP connections.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { exec, run } from '../../lib/exec.ts';
import type { AgentContext } from '../context.ts';

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
 * Creates the container's namespace with `address`; `routed` also routes it here and announces it
 * (a new container), else it stays dark until `announce` (a migration's target, before restore).
 */
export async function createNetns(ctx: AgentContext, container: string, address: string, routed: boolean) {
  const ns = netnsFor(ctx, container);
  const veth = vethFor(ctx, container);
  await removeNetns(ctx, container); // a retried restore starts afresh
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await run('ip', ['-n', ns, 'addr', 'add', `${address}/32`, 'dev', 'eth0']);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', ns, 'route', 'add', 'default', 'dev', 'eth0']);
  await run('ip', ['link', 'set', veth, 'up']);
  // Forwarding between the veth and the uplink, proxy ARP both ways, and leave to send ARP for an
  // address that is not the node's own (the announcement).
  await run('sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.ip_nonlocal_bind=1']);
  await run('sysctl', ['-qw', `net.ipv4.conf.${veth}.proxy_arp=1`, 'net.ipv4.conf.eth0.proxy_arp=1']);
  if (routed) await announce(ctx, container, address);
  return ns;
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
