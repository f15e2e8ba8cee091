// Page tunnels: CRIU's page server protocol carries no authentication, so it never crosses the
// network in the clear. A CRIU on one node talks to a local port; each connection to it becomes a
// `direct-tcpip` channel in the agents' SSH connection, and the peer agent connects the channel
// to its own CRIU on 127.0.0.1. The peer only opens ports it registered for that very node.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import type ssh2 from 'ssh2';
import { FerryError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { Throttle } from './throttle.ts';

/** Which local ports each peer node may reach through its SSH connection. */
export class TunnelPermits {
  private readonly ports = new Map<number, string>();

  allow(port: number, peerNode: string): void {
    this.ports.set(port, peerNode);
  }

  revoke(port: number): void {
    this.ports.delete(port);
  }

  /** Allows the port for as long as the server behind it runs (`done` settles when it ends). */
  allowWhile(port: number, peerNode: string, done: Promise<unknown>): void {
    this.allow(port, peerNode);
    void done.catch(() => undefined).finally(() => this.revoke(port));
  }

  allows(host: string, port: number, peerNode: string): boolean {
    return host === '127.0.0.1' && this.ports.get(port) === peerNode;
  }
}

/** Server side: accepts a `direct-tcpip` channel only to a port registered for this peer. */
export function acceptTunnel(
  permits: TunnelPermits,
  peerNode: string,
  log: Logger,
  accept: () => ssh2.ServerChannel,
  reject: () => void,
  info: ssh2.TcpipRequestInfo,
): void {
  if (!permits.allows(info.destIP, info.destPort, peerNode)) {
    log.warn({ peer: peerNode, dest: `${info.destIP}:${info.destPort}` }, 'refused tunnel: port not offered');
    return reject();
  }
  const channel = accept();
  const sock = connect({ host: '127.0.0.1', port: info.destPort, noDelay: true });
  sock.on('error', (err) => {
    log.warn({ err: err.message, port: info.destPort }, 'tunnel endpoint failed');
    channel.close();
  });
  channel.on('error', () => sock.destroy());
  channel.on('close', () => sock.destroy());
  channel.pipe(sock).pipe(channel);
}

/** Delays chunks so the stream keeps under a byte rate (spec.strategy.bandwidth). */
function throttled(bytesPerSecond: number): Transform {
  const t = new Throttle(bytesPerSecond, Date.now());
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const wait = t.delayFor(chunk.length, Date.now());
      if (wait) setTimeout(() => done(null, chunk), wait);
      else done(null, chunk);
    },
  });
}

export interface LocalForward {
  /** The local port that leads to the peer's port. */
  port: number;
  /** Bytes carried towards the peer so far. */
  bytesOut(): number;
  close(): void;
}

/**
 * Client side: listens on 127.0.0.1 (a free port) and carries each connection to `remotePort` on
 * the peer's loopback through the SSH connection.
 */
export async function forwardLocal(
  conn: ssh2.Client,
  remotePort: number,
  opts: {
    bandwidth?: number | undefined;
    onBytes?: (total: number) => void;
    onRefused?: (err: FerryError) => void;
  } = {},
): Promise<LocalForward> {
  let out = 0;
  const open = new Set<Socket>();
  const server: Server = createServer({ noDelay: true }, (sock) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    conn.forwardOut('127.0.0.1', 0, '127.0.0.1', remotePort, (err, channel) => {
      if (err) {
        // CRIU on the other end of `sock` sees the connection close and reports its own failure.
        opts.onRefused?.(
          new FerryError('TransferFailed', `tunnel to port ${remotePort} refused: ${err.message}`),
        );
        sock.destroy();
        return;
      }
      sock.on('data', (d: Buffer) => {
        out += d.length;
        opts.onBytes?.(out);
      });
      if (opts.bandwidth) sock.pipe(throttled(opts.bandwidth)).pipe(channel);
      else sock.pipe(channel);
      channel.pipe(sock);
      // A channel that ends with the SSH connection under it must not leave CRIU writing into a
      // socket nobody reads: close CRIU's end too, so it fails at once and the job can retry.
      channel.on('close', () => sock.destroy());
      channel.on('error', () => sock.destroy());
      sock.on('error', () => channel.close());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const closeAll = () => {
    server.close();
    for (const sock of open) sock.destroy();
  };
  conn.once('close', closeAll);
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    bytesOut: () => out,
    close: () => {
      conn.off('close', closeAll);
      closeAll();
    },
  };
}

/** A free TCP port on 127.0.0.1 for a CRIU server to listen on. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = s.address();
  await new Promise((r) => s.close(r));
  if (typeof addr !== 'object' || !addr) throw new FerryError('Internal', 'no free port');
  return addr.port;
}
