// Reads a stream chunk by chunk for an async loop. Unlike `for await (… of stream)` it does not
// destroy the stream when the loop exits early (a receiver must still write its reply), and unlike
// read() it never joins buffered chunks: it listens in flowing mode and pauses the stream while
// more than `highWaterMark` bytes wait, which keeps the SSH window moving without copies.
import type { Readable } from 'node:stream';

export async function* readChunks(s: Readable, highWaterMark = 8 * 1024 * 1024): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let queued = 0;
  let ended = false;
  let wake: (() => void) | undefined;
  const onData = (c: Buffer) => {
    queue.push(c);
    queued += c.length;
    if (queued > highWaterMark) s.pause();
    wake?.();
  };
  const onEnd = () => {
    ended = true;
    wake?.();
  };
  s.on('data', onData);
  s.on('end', onEnd);
  s.on('close', onEnd);
  try {
    for (;;) {
      const c = queue.shift();
      if (c) {
        queued -= c.length;
        if (s.isPaused() && queued <= highWaterMark / 2) s.resume();
        yield c;
        continue;
      }
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    s.off('data', onData);
    s.off('end', onEnd);
    s.off('close', onEnd);
  }
}
