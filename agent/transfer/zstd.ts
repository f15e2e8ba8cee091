// zstd for transfer items, through the `zstd` command (Node 20 has no zstd of its own): the sender
// compresses an item's bytes on their way into DATA frames, the receiver decompresses them before
// its sink; sizes and sha256 always describe the uncompressed bytes, so integrity checks do not
// change. Whether to compress is decided per item by `worthCompressing`, from the link's measured
// rate and a sample of the item compressed the same way.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import { FerryError } from '../../lib/errors.ts';

/** Level 1 and one thread: what keeps up with a fast link on a small node. */
export const compressor = (): ChildProcessWithoutNullStreams => spawn('zstd', ['-1', '-T1', '-q', '-c']);
export const decompressor = (): ChildProcessWithoutNullStreams => spawn('zstd', ['-d', '-q', '-c']);

export interface CompressionSample {
  /** Compressed size over original size. */
  ratio: number;
  /** Bytes of input compressed per second. */
  bytesPerSecond: number;
}

/** What Auto assumes of a stream it cannot sample beforehand (a btrfs send): typical files. */
export const TYPICAL: CompressionSample = { ratio: 0.5, bytesPerSecond: 300e6 };

/**
 * Compress when it makes the item arrive sooner: compression and sending run side by side, so
 * the compressed item goes at the slower of the compressor and the link's rate over the ratio.
 * The sample ran alone on a core; in the pipeline zstd shares the node with SSH's encryption and
 * the target with decompression, so it counts for half (bench/transfer.ts: on this 2-core VM zstd
 * lost 8% on an unlimited ~260 MiB/s link and gained 3.9x on a 64 MiB/s one). Only a clear gain
 * (10%) counts. Pure.
 */
export const SHARED_CPU = 0.5;

export function worthCompressing(linkBytesPerSecond: number, s: CompressionSample): boolean {
  const compressed = Math.min(s.bytesPerSecond * SHARED_CPU, linkBytesPerSecond / Math.max(s.ratio, 0.001));
  return compressed > linkBytesPerSecond * 1.1;
}

/** Compresses up to `bytes` from the start of a file, the way items are compressed, and times it. */
export async function sampleFile(file: string, bytes = 4 * 1024 * 1024): Promise<CompressionSample> {
  const fh = await open(file, 'r');
  let input: Buffer;
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    input = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  if (!input.length) return { ratio: 1, bytesPerSecond: Infinity };
  const z = compressor();
  let out = 0;
  z.stdout.on('data', (d: Buffer) => (out += d.length));
  const started = process.hrtime.bigint();
  z.stdin.end(input);
  const [code] = (await once(z, 'close')) as [number | null];
  if (code !== 0) throw new FerryError('Internal', `zstd exited ${code} on a sample of ${file}`);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { ratio: out / input.length, bytesPerSecond: input.length / Math.max(seconds, 1e-6) };
}
