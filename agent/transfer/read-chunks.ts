// Reads a stream chunk by chunk without the side effect of `for await (… of stream)`, which destroys
// the stream when the loop exits early: a receiver must still be able to write its reply.
import type { Readable } from 'node:stream';

export async function* readChunks(s: Readable): AsyncGenerator<Buffer> {
  for (;;) {
    const c = s.read() as Buffer | null;
    if (c !== null) {
      yield c;
      continue;
    }
    if (s.readableEnded || s.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        s.off('readable', done);
        s.off('end', done);
        s.off('close', done);
        resolve();
      };
      s.on('readable', done);
      s.on('end', done);
      s.on('close', done);
    });
  }
}
