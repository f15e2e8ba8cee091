// The device-mapper thin-provisioning driver: a volume is a thin device in a pool; a snapshot is
// a thin snapshot (`create_snap`); the changed blocks between two snapshots come from
// `thin_delta` on a metadata snapshot, and only those blocks are sent, as (offset, length, data)
// records that the target writes into its own thin volume.
//
// This project's machines have no device-mapper (shared/environment.md: CONFIG_MD unset): the
// command lines and the parsing of dmsetup's and thin-provisioning-tools' output are pure and
// unit-tested here; running them needs a kernel with dm-thin, which `unavailable()` checks.
import { exec } from '../../lib/exec.ts';

export interface ThinPool {
  /** dm name of the pool, e.g. "ferry-pool" (/dev/mapper/ferry-pool). */
  pool: string;
  /** Its metadata device, for thin_delta and thin_dump (/dev/mapper/ferry-pool_tmeta). */
  metadata: string;
}

/** A block range of a thin device, in pool blocks. */
export interface BlockRange {
  begin: number;
  length: number;
}

/** Why this node cannot use dm-thin, or undefined. */
export async function unavailable(): Promise<string | undefined> {
  const r = await exec('dmsetup', ['targets']).catch(() => ({
    code: -1,
    stdout: '',
    stderr: 'dmsetup missing',
  }));
  if (r.code !== 0)
    return `device-mapper does not work here: ${(r.stderr || r.stdout).trim().split('\n')[0]}`;
  return parseTargets(r.stdout).includes('thin') ? undefined : 'the kernel offers no dm "thin" target';
}

/** `dmsetup targets` lines: "thin-pool        v1.23.0". Pure. */
export function parseTargets(out: string): string[] {
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

/** The commands that take a snapshot `snapId` of thin device `originId` (the origin suspended). */
export function snapshotCommands(
  p: ThinPool,
  originName: string,
  originId: number,
  snapId: number,
): string[][] {
  return [
    ['dmsetup', 'suspend', originName],
    ['dmsetup', 'message', p.pool, '0', `create_snap ${snapId} ${originId}`],
    ['dmsetup', 'resume', originName],
  ];
}

/** Activates thin device `id` as /dev/mapper/`name`, `sectors` long, to read it (or write it). */
export function activateCommand(p: ThinPool, name: string, id: number, sectors: number): string[] {
  return ['dmsetup', 'create', name, '--table', `0 ${sectors} thin /dev/mapper/${p.pool} ${id}`];
}

/** Deletes thin device `id` from the pool (its dm device removed first). */
export function deleteCommands(p: ThinPool, name: string, id: number): string[][] {
  return [
    ['dmsetup', 'remove', name],
    ['dmsetup', 'message', p.pool, '0', `delete ${id}`],
  ];
}

/** thin_delta needs a stable view of the live pool's metadata: a metadata snapshot around it. */
export function deltaCommands(p: ThinPool, fromId: number, toId: number): string[][] {
  return [
    ['dmsetup', 'message', p.pool, '0', 'reserve_metadata_snap'],
    ['thin_delta', '--metadata-snap', '--snap1', String(fromId), '--snap2', String(toId), p.metadata],
    ['dmsetup', 'message', p.pool, '0', 'release_metadata_snap'],
  ];
}

/** Block size of a pool in bytes, from `dmsetup table POOL` ("0 N thin-pool META DATA BLOCK LOW ..."). Pure. */
export function parsePoolBlockBytes(table: string): number {
  const f = table.trim().split(/\s+/);
  if (f[2] !== 'thin-pool' || !f[5]) throw new Error(`not a thin-pool table: ${table.trim()}`);
  return Number(f[5]) * 512;
}

const attr = (tag: string, name: string): number => {
  const m = new RegExp(`\\b${name}="(\\d+)"`).exec(tag);
  if (!m) throw new Error(`thin_delta: <${tag}> lacks ${name}`);
  return Number(m[1]);
};

/**
 * The blocks to send from thin_delta's XML: those that differ and those only the newer snapshot
 * maps. `left_only` blocks (unmapped since) must be discarded on the target; `same` are skipped.
 * Pure.
 */
export function parseDelta(xml: string): { send: BlockRange[]; discard: BlockRange[] } {
  const send: BlockRange[] = [];
  const discard: BlockRange[] = [];
  for (const m of xml.matchAll(/<(different|right_only|left_only|same)\b([^>]*)\/>/g)) {
    const [, kind, rest = ''] = m;
    const range = { begin: attr(rest, 'begin'), length: attr(rest, 'length') };
    if (kind === 'different' || kind === 'right_only') send.push(range);
    else if (kind === 'left_only') discard.push(range);
  }
  return { send: merge(send), discard: merge(discard) };
}

/** Mapped blocks of one device from `thin_dump --dev-id N` (the full send). Pure. */
export function parseDump(xml: string): BlockRange[] {
  const out: BlockRange[] = [];
  for (const m of xml.matchAll(/<(range_mapping|single_mapping)\b([^>]*)\/>/g)) {
    const [, kind, rest = ''] = m;
    if (kind === 'range_mapping')
      out.push({ begin: attr(rest, 'origin_begin'), length: attr(rest, 'length') });
    else out.push({ begin: attr(rest, 'origin_block'), length: 1 });
  }
  return merge(out);
}

/** Sorts ranges and joins those that touch, so reads are few and long. Pure. */
export function merge(ranges: BlockRange[]): BlockRange[] {
  const sorted = [...ranges].sort((a, b) => a.begin - b.begin);
  const out: BlockRange[] = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && r.begin <= last.begin + last.length)
      last.length = Math.max(last.length, r.begin + r.length - last.begin);
    else out.push({ ...r });
  }
  return out;
}

/** Bytes a send of these ranges carries. Pure. */
export const rangeBytes = (ranges: BlockRange[], blockBytes: number): number =>
  ranges.reduce((n, r) => n + r.length * blockBytes, 0);

/** Runs one of the command lines above. */
export async function runCommand(argv: string[]): Promise<string> {
  const [cmd, ...args] = argv;
  return (await exec(cmd!, args, { errorCode: 'SnapshotFailed' })).stdout;
}

/** Reads the given block ranges of a device: the records of a send. */
export async function* readRanges(
  device: string,
  ranges: BlockRange[],
  blockBytes: number,
): AsyncGenerator<{ offset: number; data: Buffer }> {
  const { open } = await import('node:fs/promises');
  const fh = await open(device, 'r');
  try {
    for (const r of ranges) {
      const data = Buffer.alloc(r.length * blockBytes);
      await fh.read(data, 0, data.length, r.begin * blockBytes);
      yield { offset: r.begin * blockBytes, data };
    }
  } finally {
    await fh.close();
  }
}

/** Writes a send's records into the target's thin device, at their offsets. */
export async function writeRanges(
  device: string,
  records: AsyncIterable<{ offset: number; data: Buffer }>,
): Promise<number> {
  const { open } = await import('node:fs/promises');
  const fh = await open(device, 'r+');
  let n = 0;
  try {
    for await (const r of records) {
      await fh.write(r.data, 0, r.data.length, r.offset);
      n += r.data.length;
    }
  } finally {
    await fh.close();
  }
  return n;
}
