// Text for people: tables like kubectl's, sizes, durations and the phase timeline. Pure.
import type { StoredMigration } from '../api/v1alpha1/migration.ts';
import { formatDuration } from '../api/v1alpha1/quantity.ts';
import type { MigrationEvent } from '../lib/store/migration-store.ts';

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3)))
      .join('')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function bytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

export function ms(n: number | undefined): string {
  return n === undefined ? '-' : formatDuration(n);
}

export function rate(bytesPerSecond: number | undefined): string {
  return bytesPerSecond === undefined ? '-' : `${bytes(bytesPerSecond)}/s`;
}

/** kubectl's AGE column: 45s, 12m, 3h, 2d. */
export function age(since: string, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - Date.parse(since)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** The chosen target, else what the spec asks for. */
export function targetOf(m: StoredMigration): string {
  const sel = m.spec.target.nodeSelector;
  return (
    m.status.migrationState?.targetNode ??
    m.spec.target.node ??
    (sel
      ? Object.entries(sel)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')
      : '-')
  );
}

export const MIGRATION_COLUMNS = ['NAME', 'PHASE', 'SOURCE', 'TARGET', 'DOWNTIME', 'AGE'];

export function migrationRow(m: StoredMigration, now = Date.now()): string[] {
  return [
    m.metadata.name,
    m.status.phase,
    `${m.spec.source.node}/${m.spec.source.container}`,
    targetOf(m),
    ms(m.status.migrationState?.downtimeMs),
    age(m.metadata.creationTimestamp, now),
  ];
}

/** Each phase with when it began and how long it lasted. */
export function timeline(m: StoredMigration): string {
  const ts = m.status.phaseTransitionTimestamps;
  const t0 = Date.parse(ts[0]?.time ?? m.metadata.creationTimestamp);
  const rows = ts.map((t, i) => {
    const start = Date.parse(t.time);
    const next = ts[i + 1];
    return [t.phase, `+${ms(start - t0)}`, next ? ms(Date.parse(next.time) - start) : ''];
  });
  return table(['PHASE', 'AT', 'TOOK'], rows);
}

export function describe(m: StoredMigration, events: MigrationEvent[] = []): string {
  const s = m.status.migrationState;
  const lines = [
    `Name:         ${m.metadata.name}`,
    `Namespace:    ${m.metadata.namespace}`,
    `UID:          ${m.metadata.uid}`,
    `Created:      ${m.metadata.creationTimestamp}`,
    `Source:       ${m.spec.source.node} container ${m.spec.source.container}`,
    `Target:       ${targetOf(m)}`,
    `Strategy:     ${m.spec.strategy.mode}${s?.mode ? ` (used ${s.mode}: ${s.modeReason})` : ''}, maxDowntime ${m.spec.strategy.maxDowntime}`,
    `Phase:        ${m.status.phase}${m.metadata.deletionTimestamp ? ' (being deleted)' : ''}`,
  ];
  if (s?.abortStatus) lines.push(`Abort:        ${s.abortStatus}`);
  const p = m.status.progress;
  if (p)
    lines.push(
      `Progress:     ${p.step}: ${bytes(p.bytes)}${p.totalBytes ? ` of ${bytes(p.totalBytes)}` : ''} sent${p.bytesPerSecond ? ` at ${rate(p.bytesPerSecond)}` : ''} (at ${p.updatedAt})`,
    );
  if (m.status.failureReason) lines.push(`Reason:       ${m.status.failureReason}`);
  for (const w of m.status.warnings ?? []) lines.push(`Warning:      ${w}`);
  if (s) {
    lines.push(
      `Downtime:     ${ms(s.downtimeMs)} (frozen ${s.frozenAt ?? '-'}${
        s.resumedAt
          ? `, running again on the source ${s.resumedAt} after the rollback`
          : s.restoredAt
            ? `, running on target ${s.restoredAt}`
            : ''
      })`,
      `Dump:         ${ms(s.dumpMs)}   Restore: ${ms(s.restoreMs)}`,
      `Sent:         ${bytes(s.bytesBeforeFreeze)} before the freeze, ${bytes(s.bytesDuringFreeze)} during it in ${ms(s.transferMs)} (${rate(s.throughputBytesPerSecond)})`,
    );
    if (s.linkBytesPerSecond) lines.push(`Link:         ${rate(s.linkBytesPerSecond)} measured in preflight`);
    if (s.gpu)
      lines.push(
        `GPU:          ${s.gpu.processes} process(es), ${bytes(s.gpu.bytes)} of GPU memory; driver checkpoint ${ms(s.gpu.checkpointMs)}, restore ${ms(s.gpu.restoreMs)}`,
      );
    for (const v of s.volumes ?? [])
      lines.push(
        `Volume:       ${v.name} (${v.driver}): ${bytes(v.bytesBeforeFreeze)} before the freeze, ${bytes(v.bytesDuringFreeze)} during it`,
      );
  }
  const indent = (text: string) => text.split('\n').map((l) => `  ${l}`);
  lines.push('', 'Timeline:', ...indent(timeline(m)));
  const conds = m.status.conditions ?? [];
  if (conds.length) {
    lines.push(
      '',
      'Conditions:',
      ...indent(
        table(
          ['TYPE', 'STATUS', 'REASON', 'MESSAGE'],
          conds.map((c) => [c.type, c.status, c.reason, c.message]),
        ),
      ),
    );
  }
  if (events.length) {
    lines.push(
      '',
      'Events:',
      ...indent(
        table(
          ['TYPE', 'REASON', 'AGE', 'MESSAGE'],
          events.map((e) => [e.type, e.reason, age(e.time), e.message]),
        ),
      ),
    );
  }
  return lines.join('\n');
}
