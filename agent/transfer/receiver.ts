// The receiving end of a transfer session: turns frames into files in the migration's image folder
// and btrfs streams into received subvolumes, checking every item's size and sha256, and keeps
// nothing of an item that fails its check. Everything it writes stays under the migration's folders.
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { FerryError, errorMessage } from '../../lib/errors.ts';
import { noSpaceLeft } from '../../lib/space.ts';
import type { Logger } from '../../lib/logger.ts';
import { readChunks } from './read-chunks.ts';
import { decompressor } from './zstd.ts';
import { deleteSubvolume, receiveStream } from '../snapshot/btrfs.ts';
import {
  BeginSchema,
  EndSchema,
  FrameDecoder,
  FrameError,
  FrameType,
  ItemSchema,
  type Frame,
  type Item,
  type Reply,
} from './frames.ts';

export interface ReceiverOptions {
  peerNode: string;
  /** Folder for a migration's image files (on the images tmpfs). */
  imagesDir: (uid: string) => string;
  /** Folder where a migration's btrfs streams are received. */
  incomingDir: (uid: string) => string;
  log: Logger;
  /** Whether this node expects migration `uid` from `peerNode` now (lib/live-migrations.ts). */
  expects?: (uid: string, peerNode: string) => Promise<boolean>;
  /** Starts a page server for a streamed dump from `peerNode` (see the pageServer item). */
  startPageServer?: (
    migration: string,
    peerNode: string,
    into: { dir: string; parent?: string | undefined },
  ) => Promise<PageServer>;
}

export interface PageServer {
  port: number;
  /** Settles when the page server exits: resolved if it wrote the whole dump. */
  done: Promise<void>;
  stop(): Promise<void>;
}

interface Sink {
  write(data: Buffer): Promise<void>;
  /** Verifies the END frame against what was written; commits on success, discards on failure. */
  finish(end: { sha256: string; bytes: number }): Promise<number>;
  /** Ends the item unfinished; a resumable file keeps its partial data when the link broke. */
  abort(keepPartial?: boolean): Promise<void>;
}

function parseJson<T>(frame: Frame, schema: { parse(v: unknown): T }, what: string): T {
  try {
    return schema.parse(JSON.parse(frame.payload.toString('utf8')));
  } catch (err) {
    throw new FerryError('StreamRejected', `malformed ${what}: ${errorMessage(err).slice(0, 300)}`);
  }
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

async function fileSink(
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
  // A resumable item continues what an earlier session left: a finished file, or a partial one.
  let offset = 0;
  let done = false;
  if (item.resume) {
    const whole = await sizeOf(dest);
    const part = await sizeOf(tmp);
    if (whole === item.size) [offset, done] = [whole, true];
    else if (part !== undefined && part <= item.size) offset = part;
    else await rm(tmp, { force: true });
    reply({ ok: true, offset });
  }
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
        const onDisk = (await stat(done ? dest : tmp)).size;
        if (onDisk !== item.size) {
          const full = await noSpaceLeft(dir);
          throw new FerryError(
            full ? 'InsufficientSpace' : 'IntegrityError',
            `${item.path}: ${onDisk} of ${item.size} bytes reached the disk${full ? ': no space left on this node' : ''}`,
          );
        }
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

async function btrfsSink(dir: string, item: Extract<Item, { type: 'btrfs' }>, log: Logger): Promise<Sink> {
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

async function pageServerSink(
  opts: ReceiverOptions,
  migration: string,
  item: Extract<Item, { type: 'pageServer' }>,
  reply: (r: Reply) => void,
): Promise<Sink> {
  if (!opts.startPageServer)
    throw new FerryError('StreamRejected', 'this agent does not receive streamed dumps');
  const server = await opts.startPageServer(migration, opts.peerNode, { dir: item.dir, parent: item.parent });
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
function decompressing(inner: Sink): Sink {
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
function probeSink(item: Extract<Item, { type: 'probe' }>): Sink {
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

/** Serves one transfer channel until DONE, a protocol error, or the channel closing. */
/** Receiving sessions in progress, by migration: a rollback waits for them before it cleans up. */
const sessions = new Map<string, Set<Promise<void>>>();

/**
 * Resolves once every session receiving for `uid` has ended (or after `timeoutMs`): a broken link's
 * session is still aborting its item as the rollback starts, and would leave a folder behind it.
 */
export async function sessionsSettled(uid: string, timeoutMs = 15_000): Promise<void> {
  const open = sessions.get(uid);
  if (!open?.size) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.allSettled([...open]),
    new Promise<void>((r) => (timer = setTimeout(r, timeoutMs))),
  ]);
  clearTimeout(timer);
}

export async function receiveSession(channel: Duplex, opts: ReceiverOptions): Promise<void> {
  let ended!: () => void;
  const session = new Promise<void>((r) => (ended = r));
  let registered: string | undefined;
  try {
    return await receive(channel, opts, (uid) => {
      registered = uid;
      const open = sessions.get(uid) ?? new Set();
      sessions.set(uid, open.add(session));
    });
  } finally {
    ended();
    if (registered) {
      const open = sessions.get(registered);
      open?.delete(session);
      if (!open?.size) sessions.delete(registered);
    }
  }
}

async function receive(
  channel: Duplex,
  opts: ReceiverOptions,
  onBegin: (uid: string) => void,
): Promise<void> {
  const { log } = opts;
  const reply = (r: Reply) => channel.write(JSON.stringify(r) + '\n');
  const dec = new FrameDecoder();
  let migration: string | undefined;
  let sink: Sink | undefined;
  let items = 0;
  let total = 0;
  let done = false;

  const handle = async (frame: Frame): Promise<void> => {
    if (done) throw new FerryError('StreamRejected', 'data after DONE');
    if (!migration) {
      if (frame.type !== FrameType.Header)
        throw new FerryError('StreamRejected', 'stream must begin with a begin header');
      const begin = parseJson(frame, BeginSchema, 'begin header');
      if (begin.sourceNode !== opts.peerNode) {
        throw new FerryError(
          'StreamRejected',
          `stream claims source ${begin.sourceNode} but the SSH key is ${opts.peerNode}'s`,
        );
      }
      if (opts.expects && !(await opts.expects(begin.migration, opts.peerNode)))
        throw new FerryError(
          'StreamRejected',
          `no migration ${begin.migration} from ${opts.peerNode} is expected here: a stream replayed from an ended migration, or a foreign one`,
        );
      migration = begin.migration;
      onBegin(migration);
      // Folders are made by the items that write into them: a session that only probes the link
      // (preflight) leaves nothing on this node.
      log.info({ migration, peer: opts.peerNode }, 'transfer session started');
      return;
    }
    switch (frame.type) {
      case FrameType.Header: {
        if (sink) throw new FerryError('StreamRejected', 'item header before the previous item ended');
        const item = parseJson(frame, ItemSchema, 'item header');
        const raw =
          item.type === 'file'
            ? await fileSink(opts.imagesDir(migration), item, reply)
            : item.type === 'btrfs'
              ? await btrfsSink(opts.incomingDir(migration), item, log)
              : item.type === 'probe'
                ? probeSink(item)
                : await pageServerSink(opts, migration, item, reply);
        sink = 'compression' in item && item.compression === 'zstd' ? decompressing(raw) : raw;
        return;
      }
      case FrameType.Data:
        if (!sink) throw new FerryError('StreamRejected', 'data outside an item');
        await sink.write(frame.payload);
        return;
      case FrameType.End: {
        if (!sink) throw new FerryError('StreamRejected', 'END outside an item');
        const end = parseJson(frame, EndSchema, 'item trailer');
        const current = sink;
        sink = undefined;
        const bytes = await current.finish(end);
        total += bytes;
        reply({ ok: true, item: items++, bytes });
        return;
      }
      case FrameType.Done:
        if (sink) throw new FerryError('StreamRejected', 'DONE inside an item');
        done = true;
        reply({ ok: true, done: true, bytes: total, items });
        return;
    }
  };

  try {
    for await (const chunk of readChunks(channel)) {
      let frames: Frame[];
      try {
        frames = dec.push(chunk);
      } catch (err) {
        throw new FerryError('StreamRejected', err instanceof FrameError ? err.message : errorMessage(err));
      }
      for (const f of frames) await handle(f);
      if (done) break;
    }
    if (!done)
      throw new FerryError(
        'StreamRejected',
        `stream truncated${dec.pending ? ` mid-frame (${dec.pending} bytes pending)` : ''} before DONE`,
      );
    log.info({ migration, items, bytes: total }, 'transfer session complete');
  } catch (err) {
    const e =
      err instanceof FerryError ? err : new FerryError('TransferFailed', errorMessage(err), { cause: err });
    log.warn(
      { migration, peer: opts.peerNode, code: e.code, reason: e.message },
      'transfer session rejected',
    );
    // A stream that just stopped (the link broke) may be resumed; a wrong one never is.
    const broken = e.code === 'TransferFailed' || /truncated/.test(e.message);
    await sink?.abort(broken).catch(() => undefined);
    reply({ ok: false, code: e.code, error: e.message });
  } finally {
    channel.end();
  }
}
