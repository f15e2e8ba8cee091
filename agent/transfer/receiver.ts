// The receiving end of a transfer session: reads the frames, checks the session is one this node
// expects, and hands each item to its sink (sinks.ts: files in the migration's image folder, btrfs
// streams into received subvolumes), which checks its size and sha256 and keeps nothing of an item
// that fails. Everything it writes stays under the migration's folders.
import type { Duplex } from 'node:stream';
import { FerryError, errorMessage } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { readChunks } from './read-chunks.ts';
import {
  btrfsSink,
  decompressing,
  fileSink,
  pageServerSink,
  probeSink,
  type PageServer,
  type Sink,
} from './sinks.ts';

export type { PageServer };
import {
  BeginSchema,
  EndSchema,
  FrameDecoder,
  FrameError,
  FrameType,
  ItemSchema,
  type Item,
  type Frame,
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

function parseJson<T>(frame: Frame, schema: { parse(v: unknown): T }, what: string): T {
  try {
    return schema.parse(JSON.parse(frame.payload.toString('utf8')));
  } catch (err) {
    throw new FerryError('StreamRejected', `malformed ${what}: ${errorMessage(err).slice(0, 300)}`);
  }
}

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

/** The begin header: the stream says which migration it carries, from the peer its key names. */
async function beginSession(frame: Frame, opts: ReceiverOptions): Promise<string> {
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
      `no migration ${begin.migration} from ${opts.peerNode} is expected here now: it ended or moved past its transfer (a paused or replayed stream), or the stream is foreign`,
    );
  // Folders are made by the items that write into them: a session that only probes the link
  // (preflight) leaves nothing on this node.
  opts.log.info({ migration: begin.migration, peer: opts.peerNode }, 'transfer session started');
  return begin.migration;
}

/** The sink an item is written into, behind zstd when it came compressed. */
async function openSink(item: Item, opts: ReceiverOptions, migration: string, reply: (r: Reply) => void) {
  const start = opts.startPageServer;
  const raw =
    item.type === 'file'
      ? await fileSink(opts.imagesDir(migration), item, reply)
      : item.type === 'btrfs'
        ? await btrfsSink(opts.incomingDir(migration), item, opts.log)
        : item.type === 'probe'
          ? probeSink(item)
          : await pageServerSink(start && ((into) => start(migration, opts.peerNode, into)), item, reply);
  return 'compression' in item && item.compression === 'zstd' ? decompressing(raw) : raw;
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
      migration = await beginSession(frame, opts);
      onBegin(migration);
      return;
    }
    switch (frame.type) {
      case FrameType.Header: {
        if (sink) throw new FerryError('StreamRejected', 'item header before the previous item ended');
        sink = await openSink(parseJson(frame, ItemSchema, 'item header'), opts, migration, reply);
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
