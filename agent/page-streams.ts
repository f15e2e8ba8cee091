// The CRIU page streams between two agents, each behind a page tunnel in their SSH connection:
// - StopAndCopy, streamed: the target's `criu page-server` receives pages while the source dumps.
// - PostCopy: the source's `criu page-server --lazy-pages` serves the dumped pages on demand to the
//   target's `criu lazy-pages` daemon, which feeds the restored workload's page faults.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { AgentContext } from './context.ts';
import { startCriuServer, type CriuServer } from './criu/criu-server.ts';
import { peerFor } from './peers.ts';
import type { PageServer } from './transfer/receiver.ts';
import { connectPeer } from './transfer/ssh-client.ts';
import { forwardLocal, freePort } from './transfer/tunnels.ts';

/** Target side of a streamed dump: a page server writing into the migration's checkpoint folder. */
export async function startDumpReceiver(
  ctx: AgentContext,
  uid: string,
  peerNode: string,
  into: { dir: string; parent?: string | undefined } = { dir: 'checkpoint' },
): Promise<PageServer> {
  // `into` was checked against ImageDirSchema: "checkpoint", "pre-N" or "pod-N", never a path.
  const dir = path.join(ctx.layout.images(uid), into.dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const port = await freePort();
  const parent = into.parent ? ['--prev-images-dir', `../${into.parent}`] : [];
  const server = await startCriuServer(
    ctx.config.criuPath,
    ['page-server', '-D', dir, ...parent, '--address', '127.0.0.1', '--port', String(port)],
    path.join(ctx.layout.images(uid), `page-server-${into.dir}.log`),
    'TransferFailed',
    `page server on ${ctx.config.node}`,
  );
  ctx.tunnels.allowWhile(port, peerNode, server.done);
  return { port, done: server.done, stop: () => server.stop() };
}

/** Stops a migration's background CRIU helper, if it has one. */
export async function stopBackground(ctx: AgentContext, uid: string): Promise<void> {
  const s = ctx.background.get(uid);
  ctx.background.delete(uid);
  await s?.stop();
}

function keep(ctx: AgentContext, uid: string, server: CriuServer): void {
  ctx.background.set(uid, server);
}

/**
 * Source side of PostCopy: keeps the lazy checkpoint's CRIU (serving the frozen workload's pages
 * on `port`) and lets `targetNode`, and only it, reach that port through its SSH connection.
 */
export function keepLazyServer(
  ctx: AgentContext,
  uid: string,
  server: CriuServer,
  port: number,
  targetNode: string,
): void {
  ctx.tunnels.allowWhile(port, targetNode, server.done);
  keep(ctx, uid, server);
}

/**
 * Target side of PostCopy: connects to the source agent, tunnels to its lazy page server, and starts
 * the `criu lazy-pages` daemon that the restore hands its userfaultfds to.
 */
export async function startLazyDaemon(
  ctx: AgentContext,
  uid: string,
  sourceNode: string,
  sourcePort: number,
): Promise<CriuServer> {
  await stopBackground(ctx, uid);
  const { conn } = await connectPeer({
    self: ctx.config.node,
    privateKey: ctx.privateKey,
    peer: await peerFor(ctx, sourceNode),
  });
  try {
    const fwd = await forwardLocal(conn, sourcePort);
    const work = ctx.layout.work(uid);
    await mkdir(work, { recursive: true, mode: 0o700 });
    const daemon = await startCriuServer(
      ctx.config.criuPath,
      ['lazy-pages', '--page-server', '--address', '127.0.0.1', '--port', String(fwd.port)].concat([
        '-D',
        ctx.layout.checkpoint(uid),
        '-W',
        work,
      ]),
      path.join(ctx.layout.images(uid), 'lazy-pages.log'),
      'CriuRestoreFailed',
      `lazy-pages daemon on ${ctx.config.node}`,
    );
    const close = () => {
      fwd.close();
      conn.end();
    };
    void daemon.done.catch(() => undefined).finally(close);
    const server: CriuServer = {
      ...daemon,
      async stop() {
        await daemon.stop();
        close();
      },
    };
    keep(ctx, uid, server);
    return server;
  } catch (err) {
    conn.end();
    throw err;
  }
}
