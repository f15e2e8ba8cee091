// The dm-thin driver: a volume is a thin device in the node's pool, described by
// `thin/NAME.json` in the container's bundle and seen by the container as /dev/mapper/ferry-C-NAME.
// Running, a thin snapshot's mapped blocks go in full; frozen, a second snapshot's blocks that
// thin_delta says changed (and zeros where blocks were unmapped since). Blocks travel as a records
// file (offset, length, data) through the transfer session; the target creates a thin device in
// its own pool and writes both files into it. The pure parts are in dm-thin.ts.
//
// This project's machines have no device-mapper (shared/environment.md): the driver is
// unit-tested against a recorded command runner and a plain file standing in for each device
// (dm-thin-driver.test.ts); the commands against a real pool are test/dm-thin.test.ts, skipped here.
import { mkdir, open, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { ThinPoolConfig } from '../../api/v1alpha1/cluster.ts';
import { FerryError } from '../../lib/errors.ts';
import type { AgentContext } from '../context.ts';
import { exists } from './btrfs.ts';
import {
  activateCommand,
  deltaCommands,
  parseDelta,
  parseDump,
  parsePoolBlockBytes,
  rangeBytes,
  readRanges,
  runCommand,
  snapshotCommands,
  writeRanges,
  type BlockRange,
  type ThinPool,
} from './dm-thin.ts';
import type { Outbound, VolumeAt, VolumeDriver } from './volume-driver.ts';

/** A thin volume of a container: which device of which pool, and how long. */
export const ThinVolumeSchema = z.strictObject({
  pool: z.string(),
  metadata: z.string(),
  id: z.number().int().min(0),
  sectors: z.number().int().min(1),
});
export type ThinVolume = z.infer<typeof ThinVolumeSchema>;

/** What the driver needs of the node; a test gives a recorded runner and files for devices. */
export interface ThinIo {
  run: (argv: string[]) => Promise<string>;
  /** The path of an active dm device: /dev/mapper/NAME. */
  device: (name: string) => string;
}
export const hostIo: ThinIo = { run: runCommand, device: (name) => `/dev/mapper/${name}` };

const descriptorFile = (ctx: AgentContext, v: VolumeAt) =>
  path.join(ctx.layout.bundle(v.container), 'thin', `${v.name}.json`);
/** The snapshots this migration made of a volume here, so a clean-up removes exactly those. */
const recordFile = (ctx: AgentContext, uid: string, name: string) =>
  path.join(ctx.layout.images(uid), `thin-${name}.snapshots.json`);
const rangesFile = (ctx: AgentContext, v: VolumeAt, which: 'base' | 'final') =>
  path.join(ctx.layout.images(v.uid), `thin-${v.name}-${which}.ranges`);
const dmName = (v: VolumeAt, what: string) =>
  `ferry-${v.container}-${v.name}${what ? `-${what}` : ''}`.slice(0, 120);

const RecordSchema = z.strictObject({
  /** The pool the snapshots are in (the source volume's). */
  pool: z.string(),
  base: z.number().int().optional(),
  final: z.number().int().optional(),
});

/** Whether the container's volume `name` is a thin device (its descriptor exists). */
export const isThinVolume = (ctx: AgentContext, v: VolumeAt): Promise<boolean> =>
  exists(descriptorFile(ctx, v));

async function descriptor(ctx: AgentContext, v: VolumeAt): Promise<ThinVolume> {
  return ThinVolumeSchema.parse(JSON.parse(await readFile(descriptorFile(ctx, v), 'utf8')));
}

/** The lowest device id the pool does not use, from its metadata (read under a metadata snapshot). */
export function nextThinId(dumpXml: string): number {
  const ids = [...dumpXml.matchAll(/<device\b[^>]*\bdev_id="(\d+)"/g)].map((m) => Number(m[1]));
  return ids.length ? Math.max(...ids) + 1 : 1;
}

/** Records of a send: 8-byte offset, 4-byte length, the bytes. Written to a file that is then sent. */
async function writeRecords(file: string, records: AsyncIterable<{ offset: number; data: Buffer }>) {
  const fh = await open(file, 'w', 0o600);
  try {
    for await (const r of records) {
      const head = Buffer.alloc(12);
      head.writeBigUInt64BE(BigInt(r.offset), 0);
      head.writeUInt32BE(r.data.length, 8);
      await fh.write(head);
      await fh.write(r.data);
    }
  } finally {
    await fh.close();
  }
}

export async function* readRecords(file: string): AsyncGenerator<{ offset: number; data: Buffer }> {
  const buf = await readFile(file);
  for (let at = 0; at < buf.length;) {
    if (at + 12 > buf.length)
      throw new FerryError('IntegrityError', `${path.basename(file)}: a record is cut short`);
    const offset = Number(buf.readBigUInt64BE(at));
    const len = buf.readUInt32BE(at + 8);
    if (at + 12 + len > buf.length)
      throw new FerryError('IntegrityError', `${path.basename(file)}: a record's data is cut short`);
    yield { offset, data: buf.subarray(at + 12, at + 12 + len) };
    at += 12 + len;
  }
}

async function* zeros(ranges: BlockRange[], blockBytes: number) {
  for (const r of ranges) yield { offset: r.begin * blockBytes, data: Buffer.alloc(r.length * blockBytes) };
}

/** The pool's side of the driver: commands through `io`, so a test can record them. */
class ThinPoolOps {
  constructor(readonly io: ThinIo) {}

  async runAll(cmds: string[][]): Promise<string[]> {
    const out: string[] = [];
    for (const c of cmds) out.push(await this.io.run(c));
    return out;
  }

  /** Reads the pool's metadata under a metadata snapshot, as thin_delta does. */
  async dump(p: ThinPool, args: string[]): Promise<string> {
    const [, xml = ''] = await this.runAll([
      ['dmsetup', 'message', p.pool, '0', 'reserve_metadata_snap'],
      ['thin_dump', '--metadata-snap', ...args, p.metadata],
      ['dmsetup', 'message', p.pool, '0', 'release_metadata_snap'],
    ]);
    return xml;
  }

  async blockBytes(p: ThinPool): Promise<number> {
    return parsePoolBlockBytes(await this.io.run(['dmsetup', 'table', p.pool]));
  }

  async record(ctx: AgentContext, v: VolumeAt) {
    const raw = await readFile(recordFile(ctx, v.uid, v.name), 'utf8').catch(() => '{}');
    return RecordSchema.partial().parse(JSON.parse(raw));
  }

  /** A snapshot of the volume (idempotent: a retried step finds the one it made). */
  async snap(ctx: AgentContext, v: VolumeAt, which: 'base' | 'final'): Promise<number> {
    const known = await this.record(ctx, v);
    const had = known[which];
    if (had !== undefined) return had;
    const d = await descriptor(ctx, v);
    const id = nextThinId(await this.dump(d, []));
    await this.runAll(snapshotCommands(d, dmName(v, ''), d.id, id));
    await mkdir(ctx.layout.images(v.uid), { recursive: true, mode: 0o700 });
    const r = { ...known, pool: d.pool, [which]: id };
    await writeFile(recordFile(ctx, v.uid, v.name), JSON.stringify(r), { mode: 0o600 });
    return id;
  }

  /** Reads `ranges` of snapshot `id` into a records file (zeros for `discard`); bytes captured. */
  async capture(
    ctx: AgentContext,
    v: VolumeAt,
    at: { id: number; which: 'base' | 'final' },
    ranges: BlockRange[],
    discard: BlockRange[] = [],
  ): Promise<number> {
    const d = await descriptor(ctx, v);
    const bytes = await this.blockBytes(d);
    const name = dmName(v, at.which);
    await this.io.run(activateCommand(d, name, at.id, d.sectors));
    try {
      const device = this.io.device(name);
      const records = (async function* () {
        yield* readRanges(device, ranges, bytes);
        yield* zeros(discard, bytes);
      })();
      await writeRecords(rangesFile(ctx, v, at.which), records);
    } finally {
      await this.io.run(['dmsetup', 'remove', name]);
    }
    return rangeBytes([...ranges, ...discard], bytes);
  }
}

async function sendRanges(ctx: AgentContext, v: VolumeAt, which: 'base' | 'final', out: Outbound) {
  const file = rangesFile(ctx, v, which);
  return out.session.sendFile(file, path.basename(file), {
    resume: true,
    compress: await out.compress(file),
  });
}

/** A class, so a test can give its own io; the registry uses the host's. */
export class DmThinDriver implements VolumeDriver {
  readonly name = 'dm-thin' as const;
  readonly steps = {
    running: 'thin snapshot, its mapped blocks',
    frozen: 'second thin snapshot, thin_delta blocks',
  };
  readonly sendsWhileRunning = true;
  private readonly pool: ThinPoolOps;

  constructor(io: ThinIo = hostIo) {
    this.pool = new ThinPoolOps(io);
  }

  async spaceEstimate(ctx: AgentContext, v: VolumeAt): Promise<number> {
    return (await descriptor(ctx, v)).sectors * 512;
  }

  async sendRunning(ctx: AgentContext, v: VolumeAt, out: Outbound) {
    const d = await descriptor(ctx, v);
    const id = await this.pool.snap(ctx, v, 'base');
    await this.pool.capture(
      ctx,
      v,
      { id, which: 'base' },
      parseDump(await this.pool.dump(d, ['--dev-id', String(id)])),
    );
    // The descriptor goes too: the target makes a device of the same size.
    await out.session.sendFile(descriptorFile(ctx, v), `thin-${v.name}.json`, { resume: true });
    return { bytes: await sendRanges(ctx, v, 'base', out), rounds: 1 };
  }

  async snapshotFrozen(ctx: AgentContext, v: VolumeAt): Promise<void> {
    await this.pool.snap(ctx, v, 'final');
  }

  async sendFrozen(ctx: AgentContext, v: VolumeAt, out: Outbound): Promise<number> {
    const d = await descriptor(ctx, v);
    const r = await this.pool.record(ctx, v);
    if (r.base === undefined || r.final === undefined)
      throw new FerryError('SnapshotFailed', `thin volume ${v.name}: no running snapshot to send against`);
    const [, xml = ''] = await this.pool.runAll(deltaCommands(d, r.base, r.final));
    const delta = parseDelta(xml);
    await this.pool.capture(ctx, v, { id: r.final, which: 'final' }, delta.send, delta.discard);
    return sendRanges(ctx, v, 'final', out);
  }

  async received(ctx: AgentContext, v: VolumeAt): Promise<boolean> {
    const names = [`thin-${v.name}.json`, `thin-${v.name}-base.ranges`, `thin-${v.name}-final.ranges`];
    for (const n of names) if (!(await exists(path.join(ctx.layout.images(v.uid), n)))) return false;
    return true;
  }

  async restore(ctx: AgentContext, v: VolumeAt): Promise<void> {
    const pool: ThinPoolConfig | undefined = ctx.config.thinPool;
    if (!pool)
      throw new FerryError(
        'FeatureUnsupported',
        `node ${ctx.config.node} has no thin pool for volume ${v.name}`,
      );
    const sentFile = path.join(ctx.layout.images(v.uid), `thin-${v.name}.json`);
    const sent = ThinVolumeSchema.parse(JSON.parse(await readFile(sentFile, 'utf8')));
    const id = nextThinId(await this.pool.dump(pool, []));
    await this.pool.io.run(['dmsetup', 'message', pool.pool, '0', `create_thin ${id}`]);
    const name = dmName(v, '');
    await this.pool.io.run(activateCommand(pool, name, id, sent.sectors));
    // The full send, then the frozen increment over it: the device now equals the final snapshot.
    for (const which of ['base', 'final'] as const)
      await writeRanges(this.pool.io.device(name), readRecords(rangesFile(ctx, v, which)));
    const mine: ThinVolume = { ...pool, id, sectors: sent.sectors };
    await mkdir(path.dirname(descriptorFile(ctx, v)), { recursive: true, mode: 0o700 });
    await writeFile(descriptorFile(ctx, v), JSON.stringify(mine), { mode: 0o600 });
  }

  async cleanup(ctx: AgentContext, uid: string): Promise<void> {
    // Only the snapshots this migration recorded; the restored device belongs to its container.
    for (const f of await readdir(ctx.layout.images(uid)).catch(() => [] as string[])) {
      if (!/^thin-[a-z0-9-]+\.snapshots\.json$/.test(f)) continue;
      const r = RecordSchema.parse(JSON.parse(await readFile(path.join(ctx.layout.images(uid), f), 'utf8')));
      for (const id of [r.final, r.base])
        if (id !== undefined) await this.pool.io.run(['dmsetup', 'message', r.pool, '0', `delete ${id}`]);
    }
  }
}
