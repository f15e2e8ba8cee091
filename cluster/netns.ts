// Network plumbing of the local cluster: a bridge in the host namespace and, per node, a network
// namespace joined to it by a veth pair. Every function checks before it acts, so `up` repairs.
import { exec, run } from '../lib/exec.ts';

export const bridgeName = (cluster: string): string => `fbr-${cluster}`;
export const netnsName = (cluster: string, node: string): string => `ferry-${cluster}-${node}`;
/** Host side of a node's veth; interface names are limited to 15 characters. */
export const vethName = (cluster: string, index: number): string => `fv-${cluster}-${index}`;
export const nodeAddress = (subnet: string, index: number): string => `${subnet}.${10 + index}`;

async function linkExists(name: string, netns?: string): Promise<boolean> {
  const args = netns ? ['-n', netns, 'link', 'show', name] : ['link', 'show', name];
  return (await exec('ip', args)).code === 0;
}

export async function netnsExists(name: string): Promise<boolean> {
  const out = await run('ip', ['netns', 'list']);
  return out.split('\n').some((l) => l.split(' ')[0] === name);
}

export async function ensureBridge(cluster: string, subnet: string): Promise<void> {
  const br = bridgeName(cluster);
  if (!(await linkExists(br))) await run('ip', ['link', 'add', br, 'type', 'bridge']);
  const addrs = await run('ip', ['-o', 'addr', 'show', 'dev', br]);
  if (!addrs.includes(`${subnet}.1/24`)) await run('ip', ['addr', 'add', `${subnet}.1/24`, 'dev', br]);
  await run('ip', ['link', 'set', br, 'up']);
}

export async function ensureNodeNetwork(
  cluster: string,
  subnet: string,
  node: string,
  index: number,
): Promise<void> {
  const ns = netnsName(cluster, node);
  const veth = vethName(cluster, index);
  if (!(await netnsExists(ns))) await run('ip', ['netns', 'add', ns]);
  if (!(await linkExists('eth0', ns))) {
    if (await linkExists(veth)) await run('ip', ['link', 'del', veth]); // half-made pair from a crash
    await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  }
  await run('ip', ['link', 'set', veth, 'master', bridgeName(cluster)]);
  await run('ip', ['link', 'set', veth, 'up']);
  const addr = `${nodeAddress(subnet, index)}/24`;
  const addrs = await run('ip', ['-n', ns, '-o', 'addr', 'show', 'dev', 'eth0']);
  if (!addrs.includes(addr)) await run('ip', ['-n', ns, 'addr', 'add', addr, 'dev', 'eth0']);
  await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
}

export async function removeNodeNetwork(cluster: string, node: string, index: number): Promise<void> {
  const veth = vethName(cluster, index);
  if (await linkExists(veth)) await run('ip', ['link', 'del', veth]);
  const ns = netnsName(cluster, node);
  // The node's containers' namespaces too (agent/runtime/container-net.ts names them after it): a
  // container killed with its node leaves its name under /run/netns, and its address in it.
  const names = (await run('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '');
  for (const n of names) if (n.startsWith(`${ns}-`)) await run('ip', ['netns', 'del', n]);
  if (names.includes(ns)) await run('ip', ['netns', 'del', ns]);
}

export async function removeBridge(cluster: string): Promise<void> {
  const br = bridgeName(cluster);
  if (await linkExists(br)) await run('ip', ['link', 'del', br]);
}
