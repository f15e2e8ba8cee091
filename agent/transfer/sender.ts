// The sending end: connects to a peer agent over SSH (its host key pinned), opens the transfer
// subsystem and streams files and btrfs sends as framed, checksummed items.
import type { HookAction } from '../fault-hooks.ts';
import { createHash, type Hash } from 'node:crypto';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import ssh2 from 'ssh2';
import { ErrorCodeSchema } from '../../api/v1alpha1/errors.ts';
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
import { connectPeer } from './ssh-client.ts';
import { forwardLocal } from './tunnels.ts';
import { compressor } from './zstd.ts';

const EMPTY_SHA256 = createHash('sha256').digest('hex');
import { Throttle } from './throttle.ts';

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
  private flipAt: number | undefined;
  /** Every byte written to the channel, frames included: where the test cut is measured. */
  private wire = 0;
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
      // A target that refused something says why before it closes: that is the reason to give,
      // not the close itself (a sender busy writing data has not read the reply yet).
      const refusal = this.replies.find((r): r is Extract<Reply, { ok: false }> => !r.ok);
      this.closedError ??= refusal
        ? new FerryError(
            refusal.code === 'IntegrityError' ? 'IntegrityError' : 'TransferFailed',
            `the target refused: ${refusal.error}`,
          )
        : new FerryError('TransferFailed', 'the peer closed the transfer channel');
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
    const { conn, sock } = await connectPeer(opts);
    const channel = await new Promise<ssh2.ClientChannel>((resolve, reject) =>
      conn.subsys(PROTOCOL, (err, ch) =>
        err ? reject(new FerryError('TransferFailed', `subsystem refused: ${err.message}`)) : resolve(ch),
      ),
    );
    const s = new TransferSession(conn, channel, opts.onBytes);
    s.sock = sock;
    if (opts.bandwidth) {
      s.throttle = new Throttle(opts.bandwidth, Date.now());
      s.bandwidth = opts.bandwidth;
    }
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
  private bandwidth: number | undefined;

  private async write(buf: Buffer): Promise<void> {
    if (this.closedError) throw this.closedError;
    const wait = this.throttle?.delayFor(buf.length, Date.now()) ?? 0;
    if (wait) await new Promise((r) => setTimeout(r, wait));
    if (!this.channel.write(buf)) await drainOrClose(this.channel);
    this.wire += buf.length;
    if (this.cutAt !== undefined && this.wire >= this.cutAt) this.sock?.destroy();
  }

  /**
   * Sends a readable as DATA frames and returns the item's length and sha256; `seed` is what a
   * resumed item's earlier part contributes to both, without being sent again.
   */
  private async streamData(
    data: Readable,
    seed = { hash: createHash('sha256'), bytes: 0 },
    compress = false,
  ): Promise<{ bytes: number; sha256: string; sent: number }> {
    if (compress) return this.streamCompressed(data, seed);
    const hash = seed.hash;
    let n = 0;
    for await (const chunk of data as AsyncIterable<Buffer>) {
      for (let off = 0; off < chunk.length; off += MAX_DATA_BYTES) {
        let part = chunk.subarray(off, off + MAX_DATA_BYTES);
        hash.update(part);
        n += part.length;
        if (this.flipAt !== undefined && this.wire >= this.flipAt) {
          part = Buffer.from(part); // the checksum is of the true bytes; the wire carries one flipped
          part[0] = part[0]! ^ 0xff;
          this.flipAt = undefined;
        }
        await this.write(encodeFrame(FrameType.Data, part));
        this.onBytes?.(this.bytes + n);
      }
    }
    return { bytes: seed.bytes + n, sha256: hash.digest('hex'), sent: n };
  }

  /** As streamData, through zstd: the checksum and size are of the input, `sent` of the wire. */
  private async streamCompressed(
    data: Readable,
    seed: { hash: Hash; bytes: number },
  ): Promise<{ bytes: number; sha256: string; sent: number }> {
    const z = compressor();
    let stderr = '';
    z.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = once(z, 'close') as Promise<[number | null]>;
    let n = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, done) {
        seed.hash.update(chunk);
        n += chunk.length;
        done(null, chunk);
      },
    });
    const feeding = pipeline(data, counted, z.stdin);
    feeding.catch(() => undefined);
    let sent = 0;
    try {
      for await (const chunk of z.stdout as AsyncIterable<Buffer>) {
        for (let off = 0; off < chunk.length; off += MAX_DATA_BYTES) {
          const part = chunk.subarray(off, off + MAX_DATA_BYTES);
          sent += part.length;
          await this.write(encodeFrame(FrameType.Data, part));
          this.onBytes?.(this.bytes + sent);
        }
      }
      await feeding;
      const [code] = await exited;
      if (code !== 0) throw new FerryError('Internal', `zstd failed: ${stderr.trim() || `exit ${code}`}`);
    } catch (err) {
      z.kill('SIGKILL');
      throw err;
    }
    return { bytes: seed.bytes + n, sha256: seed.hash.digest('hex'), sent };
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
    if (item.type === 'pageServer') return 'streamed dump';
    if (item.type === 'probe') return 'link probe';
    return item.type === 'file' ? `file ${item.path}` : `btrfs stream ${item.name}`;
  }

  /**
   * Streams a CRIU dump: the target starts a page server, and `dump` runs CRIU against a local port
   * that leads to it through this SSH connection, so pages cross while CRIU is still dumping.
   */
  async streamDump<T>(
    dump: (localPort: number) => Promise<T>,
    into: { dir?: string; parent?: string } = {},
  ): Promise<T> {
    return (await this.openPageStream(into)).run(dump);
  }

  /**
   * The first half of streamDump: the target's page server started and the tunnel to it open, so
   * that a source can have them ready before it freezes the workload; `run` then dumps through it.
   * Closed without being run (the freeze failed), the tunnel goes; the session's end then makes the
   * target stop its page server.
   */
  async openPageStream(
    into: { dir?: string; parent?: string } = {},
  ): Promise<{ run<T>(dump: (localPort: number) => Promise<T>): Promise<T>; close(): void }> {
    const item: Item = {
      type: 'pageServer',
      dir: into.dir ?? 'checkpoint',
      ...(into.parent ? { parent: into.parent } : {}),
    };
    await this.write(jsonFrame(FrameType.Header, item));
    const r = await this.nextReply();
    if (!r.ok)
      throw new FerryError('TransferFailed', `the target cannot receive a streamed dump: ${r.error}`);
    if (!('port' in r))
      throw new FerryError('TransferFailed', 'the target did not name its page server port');
    const base = this.bytes;
    const fwd = await forwardLocal(this.conn, r.port, {
      bandwidth: this.bandwidth,
      onBytes: (n) => {
        this.onBytes?.(base + n);
        if (this.cutAt !== undefined && this.wire + n >= this.cutAt) this.sock?.destroy();
      },
    });
    return {
      run: async <T>(dump: (localPort: number) => Promise<T>): Promise<T> => {
        try {
          let result: T;
          try {
            result = await dump(fwd.port);
          } catch (err) {
            // CRIU only sees its page server vanish; when our link broke under it, say so, and let
            // the job be retried (the source is still frozen and whole) instead of failing for good.
            if (this.closedError || this.sock?.destroyed)
              throw new FerryError(
                'TransferFailed',
                `the link broke during the streamed dump: ${errorMessage(err)}`,
              );
            throw err;
          }
          await this.endItem(item, { bytes: 0, sha256: EMPTY_SHA256, sent: fwd.bytesOut() });
          return result;
        } finally {
          fwd.close();
        }
      },
      close: () => fwd.close(),
    };
  }

  /**
   * Sends a file. With `resume`, the target first says how much of it an earlier, broken session
   * already delivered; only the rest crosses the wire, and the checksum still covers the whole file.
   */
  async sendFile(
    localPath: string,
    relPath: string,
    opts: { resume?: boolean; compress?: boolean } = {},
  ): Promise<number> {
    const st = await stat(localPath);
    const item: Item = {
      type: 'file',
      path: relPath,
      size: st.size,
      mode: st.mode & 0o700,
      ...(opts.resume ? { resume: true } : {}),
      ...(opts.compress ? { compression: 'zstd' as const } : {}),
    };
    await this.write(jsonFrame(FrameType.Header, item));
    let offset = 0;
    if (opts.resume) {
      const r = await this.nextReply();
      // The target's own refusal (a stream it does not expect) is final, and said in its words.
      if (!r.ok) {
        const code = ErrorCodeSchema.safeParse(r.code);
        throw new FerryError(
          code.success ? code.data : 'TransferFailed',
          `${relPath}: the target refused it: ${r.error}`,
        );
      }
      if (!('offset' in r))
        throw new FerryError('TransferFailed', `${relPath}: the target did not say where to resume`);
      offset = Math.min(r.offset, st.size);
    }
    const hash = createHash('sha256');
    if (offset)
      for await (const chunk of createReadStream(localPath, { start: 0, end: offset - 1 }))
        hash.update(chunk as Buffer);
    this.resumedBytes += offset;
    const rest = createReadStream(localPath, { start: offset, highWaterMark: MAX_DATA_BYTES });
    return this.endItem(item, await this.streamData(rest, { hash, bytes: offset }, opts.compress));
  }

  /** Sends `bytes` that the target drops, and returns the rate they went at (bytes per second). */
  async probe(bytes: number): Promise<number> {
    const item: Item = { type: 'probe', size: bytes };
    const started = process.hrtime.bigint();
    await this.write(jsonFrame(FrameType.Header, item));
    async function* zeros() {
      const chunk = Buffer.alloc(MAX_DATA_BYTES);
      for (let left = bytes; left > 0; left -= chunk.length)
        yield chunk.subarray(0, Math.min(left, chunk.length));
    }
    await this.endItem(item, await this.streamData(Readable.from(zeros())));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return Math.round(bytes / Math.max(seconds, 1e-6));
  }

  /** Carries out a fault hook that lives inside a session (a cut link, a flipped byte); others are not its. */
  injectFault(hook: HookAction | undefined): void {
    if (hook?.action === 'cut') this.cutAfter(hook.afterBytes);
    if (hook?.action === 'flip') this.flipAfter(hook.afterBytes);
  }

  /** Test hook: flips one byte of the next DATA frame once this many bytes have gone. */
  flipAfter(bytes: number): void {
    this.flipAt = bytes;
  }

  /** Test hook: breaks the TCP connection under the session once this many bytes have gone. */
  cutAfter(bytes: number): void {
    this.cutAt = bytes;
  }

  /** Streams `btrfs send [-p parent] snap`; the target receives a subvolume named `name`. */
  async sendBtrfs(
    snapPath: string,
    name: string,
    parent?: { path: string; name: string },
    opts: { compress?: boolean } = {},
  ): Promise<number> {
    const child = sendStream(snapPath, parent?.path);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = once(child, 'close') as Promise<[number | null]>;
    try {
      const item: Item = {
        type: 'btrfs',
        name,
        ...(parent ? { parent: parent.name } : {}),
        ...(opts.compress ? { compression: 'zstd' as const } : {}),
      };
      await this.write(jsonFrame(FrameType.Header, item));
      const end = await this.streamData(child.stdout, undefined, opts.compress);
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
