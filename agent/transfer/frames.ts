// The framing of ferry's transfer stream, carried inside an SSH channel. Pure: no I/O here.
//
//   frame = type (1 byte) | length (4 bytes, big-endian) | payload
//
// A session is: HEADER{begin} then, per item, HEADER{item} DATA* END{sha256, bytes}, then DONE.
// Limits are part of the protocol: an oversized header or data frame ends the session.
import { z } from 'zod';

export const FrameType = { Header: 1, Data: 2, End: 3, Done: 4 } as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

export const MAX_HEADER_BYTES = 64 * 1024;
export const MAX_DATA_BYTES = 1024 * 1024;
export const PROTOCOL = 'ferry-transfer-v1';

export interface Frame {
  type: FrameTypeValue;
  payload: Buffer;
}

/** Safe relative path inside the migration folder: no absolute paths, no "..", no empty parts. */
export const RelativePathSchema = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.startsWith('/') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..'), {
    message: 'path must stay inside the migration folder',
  });

/** The final dump's folder, one of PreCopy's pre-dump rounds, or a pod container's (pod-N). */
export const ImageDirSchema = z.string().regex(/^(checkpoint|pre-[0-9]{1,2}|pod-[0-9]{1,2})$/);

export const BeginSchema = z.strictObject({
  type: z.literal('begin'),
  protocol: z.literal(PROTOCOL),
  migration: z.string().regex(/^[a-z0-9-]{8,64}$/),
  sourceNode: z.string(),
});
export const ItemSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('file'),
    path: RelativePathSchema,
    size: z.number().int().min(0),
    mode: z.number().int().min(0).max(0o777),
    /**
     * Resumable: the receiver first answers with the offset it already holds (from an earlier,
     * broken session of the same migration), and keeps a partial file if this session breaks too.
     */
    resume: z.boolean().optional(),
    /** DATA frames carry a zstd stream of the file; size and sha256 are of the file itself. */
    compression: z.literal('zstd').optional(),
  }),
  z.strictObject({
    type: z.literal('btrfs'),
    /** Name of the subvolume the stream creates; it must match what btrfs receive makes. */
    name: z.string().regex(/^[a-z0-9-]+$/),
    parent: z
      .string()
      .regex(/^[a-z0-9-]+$/)
      .optional(),
    compression: z.literal('zstd').optional(),
  }),
  /**
   * Memory pages streamed while CRIU dumps: the receiver starts `criu page-server` into the
   * migration's checkpoint folder and answers with its port, which the sender reaches through a
   * tunnel in the same SSH connection. No DATA frames; END comes once the dump is over, and the
   * receiver answers it when the page server has written everything and exited cleanly.
   */
  z.strictObject({
    type: z.literal('pageServer'),
    /** Folder the pages go to: the final dump's, or a PreCopy round's. */
    dir: ImageDirSchema.default('checkpoint'),
    /** PreCopy: the round before, whose pages this dump refers to instead of sending them again. */
    parent: ImageDirSchema.optional(),
  }),
  /** Bytes that only measure the link (preflight): received, checked and dropped. */
  z.strictObject({
    type: z.literal('probe'),
    size: z
      .number()
      .int()
      .min(0)
      .max(256 * 1024 * 1024),
  }),
]);
export type Item = z.infer<typeof ItemSchema>;
export const EndSchema = z.strictObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int(),
});

/** Replies from the receiver, one JSON line each. */
export const ReplySchema = z.union([
  z.strictObject({ ok: z.literal(true), item: z.number(), bytes: z.number() }),
  z.strictObject({ ok: z.literal(true), offset: z.number() }),
  z.strictObject({ ok: z.literal(true), port: z.number().int().min(1).max(65535) }),
  z.strictObject({ ok: z.literal(true), done: z.literal(true), bytes: z.number(), items: z.number() }),
  z.strictObject({ ok: z.literal(false), code: z.string(), error: z.string() }),
]);
export type Reply = z.infer<typeof ReplySchema>;

export function encodeFrame(type: FrameTypeValue, payload: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export const jsonFrame = (type: FrameTypeValue, value: unknown): Buffer =>
  encodeFrame(type, Buffer.from(JSON.stringify(value)));

export class FrameError extends Error {}

/**
 * Accumulates bytes and hands out whole frames, enforcing the protocol's limits. SSH delivers data
 * in small packets, so chunks are kept in a list and joined once per frame, not once per packet.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private length = 0;

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.length -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }

  private peekHeader(): { type: number; len: number } {
    const head = this.chunks[0]!.length >= 5 ? this.chunks[0]! : Buffer.concat(this.chunks, 5);
    return { type: head.readUInt8(0), len: head.readUInt32BE(1) };
  }

  push(chunk: Buffer): Frame[] {
    if (chunk.length) {
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
    const frames: Frame[] = [];
    while (this.length >= 5) {
      const { type, len } = this.peekHeader();
      if (type < 1 || type > 4) throw new FrameError(`unknown frame type ${type}`);
      const limit = type === FrameType.Data ? MAX_DATA_BYTES : MAX_HEADER_BYTES;
      if (len > limit) throw new FrameError(`frame of ${len} bytes exceeds the ${limit}-byte limit`);
      if (this.length < 5 + len) break;
      this.take(5);
      frames.push({ type: type as FrameTypeValue, payload: this.take(len) });
    }
    return frames;
  }

  /** Bytes received but not yet a whole frame: non-zero at end of stream means truncation. */
  get pending(): number {
    return this.length;
  }
}
