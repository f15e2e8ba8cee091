// SSH key material for agents: generation, fingerprints, and matching a presented key to a peer.
import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import type { Peer } from '../api/v1alpha1/cluster.ts';

const { utils } = ssh2;

export function generateNodeKey(node: string): { privateKey: string; publicKey: string } {
  // ssh2's keygen strips a public key's leading zero bytes, so about one ed25519 pair in 256 comes
  // out malformed, unreadable by parseKey (mscdex/ssh2#1513): such a pair is drawn again.
  for (;;) {
    const kp = utils.generateKeyPairSync('ed25519', { comment: `ferry-agent@${node}` });
    if (!(utils.parseKey(kp.private) instanceof Error) && !(utils.parseKey(kp.public) instanceof Error))
      return { privateKey: kp.private, publicKey: kp.public.trim() };
  }
}

/** The key's SSH wire-format public blob, the form ssh2 hands to host verifiers and auth handlers. */
export function publicBlob(openSshKey: string): Buffer {
  const k = utils.parseKey(openSshKey);
  if (k instanceof Error) throw k;
  return k.getPublicSSH();
}

/** OpenSSH-style fingerprint: SHA256:base64 of the public blob. Safe to log. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

export function findPeerByKey(peers: Peer[], algo: string, blob: Buffer): Peer | undefined {
  return peers.find((p) => {
    const k = utils.parseKey(p.publicKey);
    return !(k instanceof Error) && k.type === algo && k.getPublicSSH().equals(blob);
  });
}

export function verifySignature(peer: Peer, data: Buffer, signature: Buffer, hashAlgo?: string): boolean {
  const k = utils.parseKey(peer.publicKey);
  if (k instanceof Error) return false;
  return k.verify(data, signature, hashAlgo) === true;
}
