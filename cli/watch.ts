// Follows a Migration until it ends, printing each phase as it begins and the transfer's progress
// (status.progress), reading only the Migration: it works the same on the local cluster and Kubernetes.
import { setTimeout as sleep } from 'node:timers/promises';
import { TERMINAL_PHASES, type Progress, type StoredMigration } from '../api/v1alpha1/migration.ts';
import type { Client } from './client.ts';
import { bytes, ms } from './format.ts';

/** A progress line for a sending step: a bar when the total is known, bytes, rate, time left. Pure. */
export function progressLine(p: Progress | undefined, width = 20): string {
  if (!p?.bytes) return '';
  const total = p.totalBytes;
  const done = total ? Math.min(1, p.bytes / total) : undefined;
  const bar =
    done !== undefined
      ? `[${'#'.repeat(Math.round(done * width)).padEnd(width, '.')}] ${Math.round(done * 100)}% `
      : '';
  const of = total ? ` of ${bytes(total)}` : '';
  const rate = p.bytesPerSecond ? ` at ${bytes(p.bytesPerSecond)}/s` : '';
  const eta = p.etaSeconds !== undefined ? `, ${p.etaSeconds}s left` : '';
  return `             ${p.step}: ${bar}${bytes(p.bytes)}${of} sent${rate}${eta}`;
}

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
    // The controller copies the sending step's progress into status: the same on any store.
    const line = progressLine(m.status.progress);
    if (line && line !== lastProgress) out((lastProgress = line));
    if (Date.now() > deadline) throw new Error(`migration ${name} did not finish within ${ms(timeoutMs)}`);
    await sleep(100);
  }
}
