// The sinks a receiving session writes items into (receiver.ts reads the frames): a file in the
// migration's image folder (resumable), a btrfs stream into `btrfs receive`, a page server for a
// streamed dump, a link probe, each behind zstd when the item is compressed. Every sink checks the
// item's size and sha256 at its END and keeps nothing of an item that fails.
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { FerryError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { noSpaceLeft } from '../../lib/space.ts';
import { deleteSubvolume, receiveStream } from '../snapshot/btrfs.ts';
import type { Item, Reply } from './frames.ts';
import { decompressor } from './zstd.ts';

export interface PageServer {
  port: number;
  /** Settles when the page server exits: resolved if it wrote the whole dump. */
  done: Promise<void>;
  stop(): Promise<void>;
}

export interface Sink {
  write(data: Buffer): Promise<void>;
  /** Verifies the END frame against what was written; commits on success, discards on failure. */
  finish(end: { sha256: string; bytes: number }): Promise<number>;
  /** Ends the item unfinished; a resumable file keeps its partial data when the link broke. */
  abort(keepPartial?: boolean): Promise<void>;
}

function checkEnd(hash: Hash, written: number, end: { sha256: string; bytes: number }, what: string): void {
  const digest = hash.digest('hex');
  if (written !== end.bytes)
    throw new FerryError('IntegrityError', `${what}: received ${written} bytes, sender says ${end.bytes}`);
  if (digest !== end.sha256)
    throw new FerryError(
      'IntegrityError',
      `${what}: sha256 mismatch (got ${digest.slice(0, 12)}…, sender says ${end.sha256.slice(0, 12)}…)`,
    );
}

/** sha256 state over the first bytes of a file already on disk, to continue a resumed item. */
async function hashPrefix(file: string, bytes: number): Promise<Hash> {
  const hash = createHash('sha256');
  if (bytes > 0)
    for await (const chunk of createReadStream(file, { start: 0, end: bytes - 1 }))
      hash.update(chunk as Buffer);
  return hash;
}

async function sizeOf(file: string): Promise<number | undefined> {
  return stat(file).then(
    (st) => st.size,
    () => undefined,
  );
}

/**
 * Where a resumable item continues what an earlier session left: after a finished file (nothing
 * left to write), or after a partial one. Tells the sender the offset.
 */
async function resumePoint(
  item: Extract<Item, { type: 'file' }>,
  dest: string,
  tmp: string,
  reply: (r: Reply) => void,
): Promise<{ offset: number; done: boolean }> {
  if (!item.resume) return { offset: 0, done: false };
  let r = { offset: 0, done: false };
  const whole = await sizeOf(dest);
  const part = await sizeOf(tmp);
  if (whole === item.size) r = { offset: whole, done: true };
  else if (part !== undefined && part <= item.size) r = { offset: part, done: false };
  else await rm(tmp, { force: true });
  reply({ ok: true, offset: r.offset });
  return r;
}

/** What reached the disk is the whole item: a short file on a full filesystem says so. */
async function checkOnDisk(file: string, item: Extract<Item, { type: 'file' }>, dir: string): Promise<void> {
  const onDisk = (await stat(file)).size;
  if (onDisk === item.size) return;
  const full = await noSpaceLeft(dir);
  throw new FerryError(
    full ? 'InsufficientSpace' : 'IntegrityError',
    `${item.path}: ${onDisk} of ${item.size} bytes reached the disk${full ? ': no space left on this node' : ''}`,
  );
}

export async function fileSink(
  dir: string,
  item: Extract<Item, { type: 'file' }>,
  reply: (r: Reply) => void,
): Promise<Sink> {
  const dest = path.join(dir, item.path);
  // RelativePathSchema already refused ".." and absolute paths; this double-checks the join.
  if (!dest.startsWith(dir + path.sep))
    throw new FerryError('StreamRejected', `path ${item.path} leaves the image folder`);
  await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
  const tmp = `${dest}.part`;
  const { offset, done } = await resumePoint(item, dest, tmp, reply);
  const hash = await hashPrefix(done ? dest : tmp, offset);
  let written = offset;
  // Images are never readable by other users, whatever mode the sender asked for. A write stream
  // keeps several writes in flight, so the next frame is read while the last one is written.
  const out = done
    ? undefined
    : createWriteStream(tmp, {
        flags: offset ? 'a' : 'w',
        mode: item.mode & 0o700,
        highWaterMark: 8 * 1024 * 1024,
      });
  let writeError: Error | undefined;
  const failed = new Promise<never>((_, reject) =>
    out?.once('error', (err) => {
      writeError = err;
      reject(err);
    }),
  );
  failed.catch(() => undefined);
  const close = () =>
    new Promise<void>((resolve) => (!out || out.closed ? resolve() : out.end(() => resolve())));
  return {
    async write(data) {
      if (!out || written + data.length > item.size) {
        throw new FerryError(
          'IntegrityError',
          `${item.path}: more data than the announced ${item.size} bytes`,
        );
      }
      hash.update(data);
      written += data.length;
      if (!out.write(data)) await Promise.race([once(out, 'drain'), failed]);
    },
    async finish(end) {
      await Promise.race([close(), failed]).catch(() => undefined);
      try {
        // A write that failed (a full filesystem) must fail the item: what was hashed is what was
        // received, not what reached the disk. A stream destroyed by the error also counts as closed,
        // so the error is checked here, not only raced above.
        if (writeError)
          throw new FerryError(
            'InsufficientSpace',
            `${item.path}: cannot write it on this node: ${writeError.message}`,
          );
        if (written !== item.size)
          throw new FerryError('IntegrityError', `${item.path}: received ${written} of ${item.size} bytes`);
        checkEnd(hash, written, end, item.path);
        await checkOnDisk(done ? dest : tmp, item, dir);
      } catch (err) {
        await rm(done ? dest : tmp, { force: true });
        throw err;
      }
      if (!done) await rename(tmp, dest);
      return written - offset;
    },
    async abort(keepPartial) {
      // The file may still be opening: wait for the stream to close, or rm could run first.
      if (out && !out.closed)
        await new Promise<void>((resolve) => out.destroy().once('close', () => resolve()));
      if (!(keepPartial && item.resume)) await rm(tmp, { force: true });
    },
  };
}

export async function btrfsSink(
  dir: string,
  item: Extract<Item, { type: 'btrfs' }>,
  log: Logger,
): Promise<Sink> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const target = path.join(dir, item.name);
  await deleteSubvolume(target); // a retried session starts this item afresh
  const child: ChildProcessWithoutNullStreams = receiveStream(dir);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => undefined); // reported through the exit status instead
  const exited = once(child, 'close') as Promise<[number | null]>;
  const hash = createHash('sha256');
  let written = 0;
  const discard = async () => {
    child.kill('SIGKILL');
    await exited;
    await deleteSubvolume(target).catch((err) =>
      log.error({ err, target }, 'cannot delete partial subvolume'),
    );
  };
  return {
    async write(data) {
      hash.update(data);
      written += data.length;
      try {
        if (!child.stdin.write(data)) await Promise.race([once(child.stdin, 'drain'), exited]);
      } catch {
        // btrfs receive died under us (EPIPE): its own words say why (no space left, …).
        await exited;
        throw new FerryError(
          'SnapshotFailed',
          `btrfs receive of ${item.name} failed: ${stderr.trim().split('\n').slice(-2).join(' ') || 'it exited'}`,
        );
      }
    },
    async finish(end) {
      try {
        checkEnd(hash, written, end, `btrfs stream ${item.name}`);
      } catch (err) {
        await discard();
        throw err;
      }
      child.stdin.end();
      const [code] = await exited;
      if (code !== 0) {
        await deleteSubvolume(target).catch(() => undefined);
        throw new FerryError(
          'SnapshotFailed',
          `btrfs receive of ${item.name} failed: ${stderr.trim().split('\n').slice(-2).join(' ')}`,
        );
      }
      return written;
    },
    abort: discard,
  };
}

export async function pageServerSink(
  start: ((into: { dir: string; parent?: string | undefined }) => Promise<PageServer>) | undefined,
  item: Extract<Item, { type: 'pageServer' }>,
  reply: (r: Reply) => void,
): Promise<Sink> {
  if (!start) throw new FerryError('StreamRejected', 'this agent does not receive streamed dumps');
  const server = await start({ dir: item.dir, parent: item.parent });
  reply({ ok: true, port: server.port });
  return {
    write() {
      return Promise.reject(new FerryError('StreamRejected', 'a page-server item carries no data'));
    },
    async finish(end) {
      if (end.bytes !== 0) throw new FerryError('StreamRejected', 'a page-server item carries no data');
      // The dump is over on the source: the page server has had its whole stream and must exit 0.
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new FerryError('TransferFailed', 'page server did not finish')),
          30_000,
        ).unref(),
      );
      await Promise.race([server.done, timeout]).finally(() => server.stop());
      return 0;
    },
    abort: () => server.stop(),
  };
}

/** Decompresses a zstd item before `inner` sees it, keeping the order of its writes. */
export function decompressing(inner: Sink): Sink {
  const z = decompressor();
  let stderr = '';
  z.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  z.stdin.on('error', () => undefined); // reported through the exit status
  const exited = once(z, 'close') as Promise<[number | null]>;
  let chain = Promise.resolve();
  let failed: unknown;
  z.stdout.on('data', (d: Buffer) => {
    z.stdout.pause();
    chain = chain
      .then(() => inner.write(d))
      .then(
        () => void z.stdout.resume(),
        (err: unknown) => {
          failed = err;
          z.kill('SIGKILL');
        },
      );
  });
  return {
    async write(data) {
      if (failed) throw failed;
      if (!z.stdin.write(data)) await Promise.race([once(z.stdin, 'drain'), exited]);
    },
    async finish(end) {
      z.stdin.end();
      const [code] = await exited;
      await chain;
      if (failed) throw failed;
      if (code !== 0) {
        await inner.abort();
        throw new FerryError(
          'IntegrityError',
          `zstd stream does not decompress: ${stderr.trim() || `exit ${code}`}`,
        );
      }
      return inner.finish(end);
    },
    async abort(keepPartial) {
      z.kill('SIGKILL');
      await exited;
      await chain.catch(() => undefined);
      await inner.abort(keepPartial);
    },
  };
}

/** A link probe: counted and checked like any item, then forgotten. */
export function probeSink(item: Extract<Item, { type: 'probe' }>): Sink {
  const hash = createHash('sha256');
  let written = 0;
  return {
    write(data) {
      written += data.length;
      if (written > item.size) throw new FerryError('IntegrityError', 'probe longer than announced');
      hash.update(data);
      return Promise.resolve();
    },
    finish(end) {
      checkEnd(hash, written, end, 'link probe');
      return Promise.resolve(written);
    },
    abort: () => Promise.resolve(),
  };
}
