// The workload's own record on each node: what this node did for a migration that has not ended
// (frozen the source, handed it over, restored the copy), kept on the node's own filesystem so that
// an agent that finds the control plane empty or unreachable still knows what to thaw or remove
// (fencing/settle.ts). Written before each side effect, removed once the migration's end is settled.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { VolumeRefSchema, WorkloadKindSchema } from '../../api/v1alpha1/jobs.ts';
import type { AgentContext } from '../context.ts';

export const NodeRecordSchema = z.strictObject({
  role: z.enum(['source', 'target']),
  /**
   * source: frozen (dumped, may resume), handedOver (the transfer completed: the target may restore);
   * target: restoring (a restore began), restored (the copy runs here).
   */
  state: z.enum(['frozen', 'handedOver', 'restoring', 'restored']),
  /** The source's target, which it asks when the store forgot the migration. */
  peer: z.string().optional(),
  /** What the workload kind needs to resume, remove or keep it (the fields of its jobs). */
  migration: z.strictObject({
    uid: z.string(),
    name: z.string(),
    workload: WorkloadKindSchema,
    pid: z.number().int().optional(),
  }),
  container: z.string(),
  volumes: z.array(VolumeRefSchema),
  /** The first freeze of the source: a retried dump reports it, so downtime counts every attempt. */
  frozenAt: z.string().optional(),
  /** When the copy here first ran: a retried restore that finds it running reports it. */
  restoredAt: z.string().optional(),
  time: z.string(),
});
export type NodeRecord = z.infer<typeof NodeRecordSchema>;

const dir = (ctx: AgentContext) => path.join(ctx.config.fsRoot, 'records');
const file = (ctx: AgentContext, uid: string) => path.join(dir(ctx), `${uid}.json`);

export async function writeRecord(ctx: AgentContext, r: Omit<NodeRecord, 'time'>): Promise<void> {
  await mkdir(dir(ctx), { recursive: true, mode: 0o700 });
  const f = file(ctx, r.migration.uid);
  await writeFile(`${f}.new`, JSON.stringify({ ...r, time: new Date().toISOString() }), { mode: 0o600 });
  await rename(`${f}.new`, f);
}

export async function readRecord(ctx: AgentContext, uid: string): Promise<NodeRecord | undefined> {
  const raw = await readFile(file(ctx, uid), 'utf8').catch(() => undefined);
  if (!raw) return undefined;
  const p = NodeRecordSchema.safeParse(JSON.parse(raw));
  return p.success ? p.data : undefined;
}

export async function dropRecord(ctx: AgentContext, uid: string): Promise<void> {
  await rm(file(ctx, uid), { force: true });
}

export async function allRecords(ctx: AgentContext): Promise<NodeRecord[]> {
  const names = await readdir(dir(ctx)).catch(() => [] as string[]);
  const out: NodeRecord[] = [];
  for (const n of names.filter((x) => x.endsWith('.json'))) {
    const r = await readRecord(ctx, n.slice(0, -'.json'.length));
    if (r) out.push(r);
  }
  return out;
}

/** The fields every job of the migration carries, for handing to the workload kind. */
export const jobOf = <K extends string>(r: NodeRecord, kind: K) => ({
  kind,
  migration: r.migration,
  container: r.container,
  volumes: r.volumes,
});
