// Resolves a node name to its pinned SSH identity, from the agent's own peers file: a job names
// the target node, never an address or a key, so a job cannot send images anywhere else.
import { FerryError } from '../lib/errors.ts';
import type { Peer } from '../api/v1alpha1/cluster.ts';
import { loadPeers } from './transfer/ssh-server.ts';
import type { AgentContext } from './context.ts';
import { TransferSession } from './transfer/sender.ts';
import { progressReport } from './transfer/throttle.ts';

export async function peerFor(ctx: AgentContext, node: string): Promise<Peer> {
  const peer = (await loadPeers(ctx.config.peersFile)).find((p) => p.node === node);
  if (!peer) throw new FerryError('NodeNotFound', `node ${node} is not in ${ctx.config.node}'s peers file`);
  return peer;
}

/** Runs `fn` inside a transfer session to `node`, closing it whatever happens. */
export async function withSession<T>(
  ctx: AgentContext,
  node: string,
  migration: string,
  fn: (s: TransferSession) => Promise<T>,
  opts: { bandwidth?: number | undefined; totalBytes?: number | undefined } = {},
): Promise<T> {
  const started = Date.now();
  const session = await TransferSession.open({
    self: ctx.config.node,
    privateKey: ctx.privateKey,
    peer: await peerFor(ctx, node),
    migration,
    onBytes: (bytes) => ctx.progress(progressReport(bytes, opts.totalBytes, started, Date.now())),
    ...(opts.bandwidth ? { bandwidth: opts.bandwidth } : {}),
  });
  try {
    const result = await fn(session);
    await session.finish();
    return result;
  } finally {
    session.close();
  }
}
