// One SSH connection to a peer agent: its host key pinned from the peers file, our node key as
// the identity. The transfer session and the page tunnels both ride on such a connection.
import { connect, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import { FerryError } from '../../lib/errors.ts';
import type { Peer } from '../../api/v1alpha1/cluster.ts';
import { fingerprint, publicBlob } from '../../lib/ssh-keys.ts';

const { Client } = ssh2;

// AES-GCM is the fastest cipher ssh2 offers here (see shared/environment.md); chacha20 is far slower.
const CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'] as ssh2.CipherAlgorithm[];

export interface PeerIdentity {
  /** Our node name: the SSH user name the peer checks our key against. */
  self: string;
  privateKey: string;
  peer: Peer;
}

export async function connectPeer(opts: PeerIdentity): Promise<{ conn: ssh2.Client; sock: Socket }> {
  const expected = publicBlob(opts.peer.publicKey);
  const conn = new Client();
  // Nagle off: small END frames and replies must not wait for a delayed ACK.
  const sock = connect({ host: opts.peer.address, port: opts.peer.sshPort, noDelay: true });
  sock.once('error', () => undefined); // reported through the ssh client's own error event
  let hostKeyError: FerryError | undefined;
  // Whatever ends the handshake (an error event, a close, a throw), a pinned-key mismatch seen by
  // then is the reason given; anything else is a transfer failure naming the peer.
  const failure = (err?: Error) =>
    hostKeyError ??
    new FerryError(
      'TransferFailed',
      `ssh to ${opts.peer.node}: ${err?.message ?? 'connection closed during the handshake'}`,
      { cause: err },
    );
  await new Promise<void>((resolve, reject) => {
    conn.once('ready', () => resolve());
    conn.on('error', (err) => reject(failure(err)));
    conn.once('close', () => reject(failure()));
    conn.connect({
      sock,
      username: opts.self,
      privateKey: opts.privateKey,
      readyTimeout: 10_000,
      keepaliveInterval: 5_000,
      algorithms: { cipher: CIPHERS },
      hostVerifier: (key: Buffer) => {
        if (key.equals(expected)) return true;
        hostKeyError = new FerryError(
          'AuthRefused',
          `${opts.peer.node} presented host key ${fingerprint(key)}, expected ${fingerprint(expected)}`,
        );
        return false;
      },
    });
  }).catch((err: unknown) => {
    conn.end();
    throw err instanceof FerryError ? err : failure(err instanceof Error ? err : new Error(String(err)));
  });
  return { conn, sock };
}
