// The sending end: connects to a peer agent over SSH (its host key pinned), opens the transfer
// subsystem and streams files and btrfs sends as framed, checksummed items.
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import ssh2 from 'ssh2';
import { FerryError, errorMessage } from '../../lib/errors.ts';
import type { Peer } from '../../api/v1alpha1/cluster.ts';
import { sendStream } from '../snapshot/btrfs.ts';
import {
  FrameType,
  MAX_DATA_BYTES,
  PROTOCOL,
  ReplySchema,
  encodeFrame,
  jsonFrame,
  type Item,
  type Reply,
} from './frames.ts';
import { fingerprint, publicBlob } from './keys.ts';
import { Throttle } from './throttle.ts';

const { Client } = ssh2;

// AES-GCM is the fastest cipher ssh2 offers here (see shared/environment.md); chacha20 is far slower.
const CIPHERS = ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com'] as ssh2.CipherAlgorithm[];

/** Waits for 'drain' or 'close', removing both listeners afterwards (no listener leak per write). */
function drainOrClose(ch: ssh2.ClientChannel): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      ch.off('drain', done);
      ch.off('close', done);
      resolve();
    };
    ch.on('drain', done);
    ch.on('close', done);
  });
}

export interface SendOptions {
  self: string;
  privateKey: string;
  peer: Peer;
  migration: string;
  /** Called as bytes go out, for progress reports. */
  onBytes?: (total: number) => void;
  /** Upper limit in bytes per second (spec.strategy.bandwidth). */
  bandwidth?: number;
}

export class TransferSession {
  private replies: Reply[] = [];
  private waiters: Array<(r: Reply) => void> = [];
  private buffered = '';
  private closedError: FerryError | undefined;
  bytes = 0;
  items = 0;
  /** Bytes an earlier session had delivered already, skipped thanks to resume. */
  resumedBytes = 0;
  private cutAt: number | undefined;
  private sock: Socket | undefined;

  private constructor(
    private readonly conn: ssh2.Client,
    private readonly channel: ssh2.ClientChannel,
    private readonly onBytes?: (total: number) => void,
  ) {
    channel.setEncoding('utf8');
    channel.on('data', (d: string) => {
      this.buffered += d;
      let i;
      while ((i = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, i);
        this.buffered = this.buffered.slice(i + 1);
        const r = ReplySchema.safeParse(JSON.parse(line));
        this.deliver(r.success ? r.data : { ok: false, code: 'StreamRejected', error: 'malformed reply' });
      }
    });
    channel.on('close', () => {
      this.closedError ??= new FerryError('TransferFailed', 'the peer closed the transfer channel');
      for (const w of this.waiters.splice(0))
        w({ ok: false, code: 'TransferFailed', error: this.closedError.message });
    });
  }

  private deliver(r: Reply) {
    const w = this.waiters.shift();
    if (w) w(r);
    else this.replies.push(r);
  }

  private nextReply(): Promise<Reply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.closedError)
      return Promise.resolve({ ok: false, code: 'TransferFailed', error: this.closedError.message });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  static async open(opts: SendOptions): Promise<TransferSession> {
    const expected = publicBlob(opts.peer.publicKey);
    const conn = new Client();
    let sock: Socket | undefined;
    let hostKeyError: FerryError | undefined;
    // Whatever ends the handshake (an error event, a close, a throw), a pinned-key mismatch seen by
    // then is the reason given; anything else is a transfer failure naming the peer.
    const failure = (err?: Error) =>
      hostKeyError ??
      new FerryError(
        'TransferFailed',
        `ssh to ${opts.peer.node}: ${err?.message ?? 'connection closed during the handshake'}`,
        {
          cause: err,
        },
      );
    await new Promise<void>((resolve, reject) => {
      conn.once('ready', () => resolve());
      conn.on('error', (err) => reject(failure(err)));
      conn.once('close', () => reject(failure()));
      // Nagle off: small END frames and replies must not wait for a delayed ACK.
      sock = connect({ host: opts.peer.address, port: opts.peer.sshPort, noDelay: true });
      sock.once('error', () => undefined); // reported through the ssh client's own error event
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
    const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      conn.subsys(PROTOCOL, (err, ch) =>
        err ? reject(new FerryError('TransferFailed', `subsystem refused: ${err.message}`)) : resolve(ch),
      ),
    );
    const s = new TransferSession(conn, channel, opts.onBytes);
    s.sock = sock;
    if (opts.bandwidth) s.throttle = new Throttle(opts.bandwidth, Date.now());
    await s.write(
      jsonFrame(FrameType.Header, {
        type: 'begin',
        protocol: PROTOCOL,
        migration: opts.migration,
        sourceNode: opts.self,
      }),
    );
    return s;
  }

  private throttle: Throttle | undefined;

  private async write(buf: Buffer): Promise<void> {
    if (this.closedError) throw this.closedError;
    const wait = this.throttle?.delayFor(buf.length, Date.now()) ?? 0;
    if (wait) await new Promise((r) => setTimeout(r, wait));
    if (!this.channel.write(buf)) await drainOrClose(this.channel);
    if (this.cutAt !== undefined && this.bytes + buf.length >= this.cutAt) this.sock?.destroy();
  }

  /**
   * Sends a readable as DATA frames and returns the item's length and sha256; `seed` is what a
   * resumed item's earlier part contributes to both, without being sent again.
   */
  private async streamData(
    data: Readable,
    seed = { hash: createHash('sha256'), bytes: 0 },
  ): Promise<{ bytes: number; sha256: string; sent: number }> {
    const hash = seed.hash;
    let n = 0;
    for await (const chunk of data as AsyncIterable<Buffer>) {
      for (let off = 0; off < chunk.length; off += MAX_DATA_BYTES) {
        const part = chunk.subarray(off, off + MAX_DATA_BYTES);
        hash.update(part);
        n += part.length;
        await this.write(encodeFrame(FrameType.Data, part));
        this.onBytes?.(this.bytes + n);
      }
    }
    return { bytes: seed.bytes + n, sha256: hash.digest('hex'), sent: n };
  }

  /** Sends END and waits for the target's verdict on the item; returns the bytes sent for it. */
  private async endItem(item: Item, end: { bytes: number; sha256: string; sent?: number }): Promise<number> {
    await this.write(jsonFrame(FrameType.End, { bytes: end.bytes, sha256: end.sha256 }));
    const reply = await this.nextReply();
    if (!reply.ok) {
      const code = reply.code === 'IntegrityError' ? 'IntegrityError' : 'TransferFailed';
      throw new FerryError(code, `${this.describe(item)} rejected by the target: ${reply.error}`);
    }
    const sent = end.sent ?? end.bytes;
    this.bytes += sent;
    this.items++;
    return sent;
  }

  private describe(item: Item): string {
    return item.type === 'file' ? `file ${item.path}` : `btrfs stream ${item.name}`;
  }

  /**
   * Sends a file. With `resume`, the target first says how much of it an earlier, broken session
   * already delivered; only the rest crosses the wire, and the checksum still covers the whole file.
   */
  async sendFile(localPath: string, relPath: string, opts: { resume?: boolean } = {}): Promise<number> {
    const st = await stat(localPath);
    const item: Item = {
      type: 'file',
      path: relPath,
      size: st.size,
      mode: st.mode & 0o700,
      ...(opts.resume ? { resume: true } : {}),
    };
    await this.write(jsonFrame(FrameType.Header, item));
    let offset = 0;
    if (opts.resume) {
      const r = await this.nextReply();
      if (!r.ok || !('offset' in r))
        throw new FerryError('TransferFailed', `${relPath}: the target did not say where to resume`);
      offset = Math.min(r.offset, st.size);
    }
    const hash = createHash('sha256');
    if (offset)
      for await (const chunk of createReadStream(localPath, { start: 0, end: offset - 1 }))
        hash.update(chunk as Buffer);
    this.resumedBytes += offset;
    const rest = createReadStream(localPath, { start: offset, highWaterMark: MAX_DATA_BYTES });
    return this.endItem(item, await this.streamData(rest, { hash, bytes: offset }));
  }

  /** Test hook: breaks the TCP connection under the session once this many bytes have gone. */
  cutAfter(bytes: number): void {
    this.cutAt = bytes;
  }

  /** Streams `btrfs send [-p parent] snap`; the target receives a subvolume named `name`. */
  async sendBtrfs(snapPath: string, name: string, parent?: { path: string; name: string }): Promise<number> {
    const child = sendStream(snapPath, parent?.path);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = once(child, 'close') as Promise<[number | null]>;
    try {
      const item: Item = parent ? { type: 'btrfs', name, parent: parent.name } : { type: 'btrfs', name };
      await this.write(jsonFrame(FrameType.Header, item));
      const end = await this.streamData(child.stdout);
      // A failed send must not produce an END that the target would accept: check the exit first.
      const [code] = await exited;
      if (code !== 0)
        throw new FerryError('SnapshotFailed', `btrfs send ${snapPath} failed: ${stderr.trim()}`);
      return await this.endItem(item, end);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  }

  async finish(): Promise<void> {
    await this.write(encodeFrame(FrameType.Done, Buffer.alloc(0)));
    const reply = await this.nextReply();
    if (!reply.ok)
      throw new FerryError('TransferFailed', `target refused to close the session: ${reply.error}`);
  }

  close(): void {
    try {
      this.channel.end();
    } catch (err) {
      void errorMessage(err);
    }
    this.conn.end();
  }
}
