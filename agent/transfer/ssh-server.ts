// The agent's SSH server: peers authenticate with their node key (public-key auth only); anything
// else is refused and logged with the key's fingerprint. One subsystem: the transfer protocol.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import ssh2 from 'ssh2';
import type { Logger } from '../../lib/logger.ts';
import { PeersSchema, type Peer } from '../../api/v1alpha1/cluster.ts';
import { PROTOCOL } from './frames.ts';
import { findPeerByKey, fingerprint, verifySignature } from '../../lib/ssh-keys.ts';
import { receiveSession, type ReceiverOptions } from './receiver.ts';
import { acceptTunnel, type TunnelPermits } from './tunnels.ts';

const { Server } = ssh2;

export interface SshServerOptions {
  address: string;
  port: number;
  hostKey: string;
  peersFile: string;
  receiver: Omit<ReceiverOptions, 'peerNode' | 'log'>;
  /** Ports on this node's loopback that a peer may reach through a page tunnel. */
  permits: TunnelPermits;
  log: Logger;
}

export async function loadPeers(file: string): Promise<Peer[]> {
  return PeersSchema.parse(JSON.parse(await readFile(file, 'utf8')));
}

export async function startSshServer(opts: SshServerOptions): Promise<{ port: number; close(): void }> {
  const { log } = opts;
  // A client that vanished without closing (its link cut, its node gone) would leave its session
  // established here for good: with no packet from it for three 10 s pings, the session ends. A
  // live client answers, and pings every 5 s itself (ssh-client.ts); a paused one has 30 s or more.
  const keepalive = { keepaliveInterval: 10_000, keepaliveCountMax: 3 };
  const server = new Server({ hostKeys: [opts.hostKey], ...keepalive }, (client, info) => {
    let peer: Peer | undefined;
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      // Re-read on every attempt so nodes added to the cluster are trusted without a restart.
      loadPeers(opts.peersFile)
        .then((peers) => {
          // Only the peer the client claims to be: in a Kubernetes install all agents share one key.
          const claimed = peers.filter((p) => p.node === ctx.username);
          const match = findPeerByKey(claimed, ctx.key.algo, ctx.key.data);
          if (!match || match.node !== ctx.username) {
            log.warn(
              { remote: info.ip, user: ctx.username, fingerprint: fingerprint(ctx.key.data) },
              'refused SSH key: not an authorised agent key for that node',
            );
            return ctx.reject();
          }
          if (!ctx.signature) return ctx.accept(); // the client only asks whether the key would do
          if (!verifySignature(match, ctx.blob!, ctx.signature, ctx.hashAlgo)) {
            log.warn({ remote: info.ip, user: ctx.username }, 'refused SSH key: bad signature');
            return ctx.reject();
          }
          peer = match;
          ctx.accept();
        })
        .catch((err) => {
          log.error({ err }, 'cannot read the peers file');
          ctx.reject();
        });
    });
    client.on('ready', () => {
      client.on('tcpip', (accept, reject, tinfo) => {
        if (!peer) return reject();
        acceptTunnel(opts.permits, peer.node, log, accept, reject, tinfo);
      });
      client.on('session', (accept) => {
        const session = accept();
        session.on('subsystem', (acceptSub, reject, sub) => {
          if (sub.name !== PROTOCOL || !peer) return reject();
          const channel = acceptSub();
          void receiveSession(channel, { ...opts.receiver, peerNode: peer.node, log });
        });
        session.on('exec', (_a, reject) => reject());
        session.on('shell', (_a, reject) => reject());
      });
    });
    client.on('error', (err) => log.debug({ err: err.message, remote: info.ip }, 'ssh client error'));
  });
  // Our own listener, so that Nagle's algorithm is off: each item's small END frame and its reply
  // would otherwise wait out the peer's delayed ACK (about 40 ms an item).
  const listener = createServer({ noDelay: true }, (sock) => server.injectSocket(sock));
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(opts.port, opts.address, () => resolve());
  });
  log.info({ address: opts.address, port: opts.port }, 'ssh server listening');
  const address = listener.address();
  return {
    port: typeof address === 'object' && address ? address.port : opts.port,
    close() {
      listener.close();
      server.close();
    },
  };
}
