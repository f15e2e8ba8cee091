// Follows a Migration until it ends, printing each phase as it begins and the transfer's progress.
import { setTimeout as sleep } from 'node:timers/promises';
import { Job as BullJob } from 'bullmq';
import { TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import { jobIdFor } from '../controller/reconcile.ts';
import type { Client } from './client.ts';
import { bytes, ms } from './format.ts';

export async function waitForMigration(
  client: Client,
  namespace: string,
  name: string,
  out: (line: string) => void,
  timeoutMs = 600_000,
): Promise<StoredMigration> {
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  let lastProgress = '';
  for (;;) {
    const m = await client.store.get(namespace, name);
    if (!m) throw new Error(`migration ${namespace}/${name} was deleted`);
    const ts = m.status.phaseTransitionTimestamps;
    const t0 = Date.parse(ts[0]!.time);
    for (; seen < ts.length; seen++)
      out(`  +${ms(Date.parse(ts[seen]!.time) - t0).padEnd(8)} ${ts[seen]!.phase}`);
    if (TERMINAL_PHASES.includes(m.status.phase)) return m;
    if (m.status.phase === 'Syncing' || m.status.phase === 'Transferring') {
      const step = m.status.phase === 'Syncing' ? 'sync' : 'transfer';
      const job = await BullJob.fromId(client.bus.queue(m.spec.source.node), jobIdFor(m.metadata.uid, step));
      const p = job?.progress as
        { bytes?: number; bytesPerSecond?: number; totalBytes?: number; etaSeconds?: number } | undefined;
      const of = p?.totalBytes ? ` of ${bytes(p.totalBytes)}` : '';
      const rate = p?.bytesPerSecond ? ` at ${bytes(p.bytesPerSecond)}/s` : '';
      const eta = p?.etaSeconds !== undefined ? `, ${p.etaSeconds}s left` : '';
      const line = p?.bytes ? `             ${step}: ${bytes(p.bytes)}${of} sent${rate}${eta}` : '';
      if (line && line !== lastProgress) out((lastProgress = line));
    }
    if (Date.now() > deadline) throw new Error(`migration ${name} did not finish within ${ms(timeoutMs)}`);
    await sleep(100);
  }
}
