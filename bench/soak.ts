// Soak: one workload moved back and forth between two local nodes many times in a row (100 by
// default). Reports successes, failures with their reasons, the downtime distribution, and the
// resident memory and open file descriptors of the controller and both agents at the start (after a
// few warm-up rounds) and at the end, with the end/start ratios: they must not grow. The
// baseline is the same run's first rounds (downtime) and start (memory, fds). Each finished
// Migration is deleted, as an operator's clean-up would, so the store does not grow with the run.
// The same run first checkpoints and restores the same workload in place with runc five times: the
// downtime's p50 is given as a ratio to that median too. Writes bench/results/soak.json.
//
//   node --import tsx bench/soak.ts [--rounds 100] [--memory-mib 32] [--warmup 5] [--keep]
import { writeResults } from './results-file.ts';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect, type Client } from '../cli/client.ts';
import { clusterDown } from '../cluster/cluster.ts';
import { bytes, ms, table } from '../cli/format.ts';
import { clusterDir, nodePaths } from '../lib/paths.ts';
import { migrate, runWorkload, unique, verify } from '../test/helpers.ts';
import { BENCH_CLUSTER as CLUSTER, upBenchCluster } from './bench-cluster.ts';
import { runcInPlace } from './runc-baseline.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '100' },
    'memory-mib': { type: 'string', default: '32' },
    warmup: { type: 'string', default: '5' },
    keep: { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const warmup = Number(values.warmup);

interface Usage {
  rssBytes: number;
  fds: number;
}

async function usage(pidFile: string): Promise<Usage> {
  const pid = (await readFile(pidFile, 'utf8')).trim();
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  return { rssBytes: rss, fds: (await readdir(`/proc/${pid}/fd`)).length };
}

async function processes(): Promise<Record<string, Usage>> {
  return {
    controller: await usage(path.join(clusterDir(CLUSTER), 'controller.pid')),
    'agent node1': await usage(nodePaths(CLUSTER, 'node1').pidFile),
    'agent node2': await usage(nodePaths(CLUSTER, 'node2').pidFile),
  };
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

async function main() {
  console.log(`ferry soak: ${rounds} migrations back and forth, ${values['memory-mib']} MiB workload`);
  await upBenchCluster();
  const c = await connect(CLUSTER);
  try {
    await soak(c);
  } finally {
    await c.close();
    // The bench cluster goes with the run (--keep leaves it up), so it loads nothing measured next.
    if (!values.keep) await clusterDown(CLUSTER);
  }
}

async function soak(c: Client) {
  const mib = Number(values['memory-mib']);
  const baseline: number[] = [];
  for (let i = 0; i < 5; i++) baseline.push(await runcInPlace(c, CLUSTER, mib));
  const runcMs = Math.round(quantile(baseline, 0.5));
  console.log(`  baseline: runc checkpoint + restore in place, median of 5: ${ms(runcMs)}`);
  const container = unique('soak');
  await runWorkload(c, 'node1', container, Number(values['memory-mib']));
  const outcomes: { round: number; phase: string; from: string; downtimeMs?: number; reason?: string }[] = [];
  let start: Record<string, Usage> | undefined;
  let here = 'node1';
  const t0 = Date.now();
  for (let round = 1; round <= rounds; round++) {
    const to = here === 'node1' ? 'node2' : 'node1';
    const name = unique(`soak-${round}`);
    const m = await migrate(c, name, { node: here, container }, to);
    const ok = m.status.phase === 'Succeeded';
    outcomes.push({
      round,
      phase: m.status.phase,
      from: here,
      ...(ok ? { downtimeMs: m.status.migrationState?.downtimeMs } : { reason: m.status.failureReason }),
    });
    if (ok) here = to;
    else console.log(`  round ${round}: ${m.status.phase}: ${m.status.failureReason}`);
    await c.store.delete('default', name);
    if (round === warmup) start = await processes();
    if (round % 10 === 0) process.stdout.write(`  ${round}/${rounds} done (${ms(Date.now() - t0)})\n`);
  }
  const end = await processes();
  const check = await verify(c, here, container);
  await c.bus.call(here, { kind: 'remove', container });
  await c.close();

  const downtimes = outcomes.flatMap((o) => (o.downtimeMs === undefined ? [] : [o.downtimeMs]));
  const first = downtimes.slice(0, 10);
  const last = downtimes.slice(-10);
  const failures = outcomes.filter((o) => o.phase !== 'Succeeded');
  console.log(
    `\n${outcomes.length - failures.length} succeeded, ${failures.length} failed in ${ms(Date.now() - t0)}; workload check at the end: ${check.pass ? 'PASS' : 'FAIL'} (${check.line})`,
  );
  for (const f of failures) console.log(`  failed round ${f.round} (from ${f.from}): ${f.reason}`);
  console.log(
    `downtime: p50 ${ms(quantile(downtimes, 0.5))} (${(quantile(downtimes, 0.5) / runcMs).toFixed(2)}× runc in place), p90 ${ms(quantile(downtimes, 0.9))}, p99 ${ms(quantile(downtimes, 0.99))}, max ${ms(Math.max(...downtimes))}; last 10 / first 10 (medians): ${(quantile(last, 0.5) / quantile(first, 0.5)).toFixed(2)}`,
  );
  console.log(
    table(
      [
        'process',
        `rss after round ${warmup}`,
        'rss at the end',
        'ratio',
        'fds after warm-up',
        'fds at the end',
      ],
      Object.keys(end).map((p) => [
        p,
        bytes(start![p]!.rssBytes),
        bytes(end[p]!.rssBytes),
        (end[p]!.rssBytes / start![p]!.rssBytes).toFixed(2),
        String(start![p]!.fds),
        String(end[p]!.fds),
      ]),
    ),
  );
  await writeResults('soak', {
    when: new Date().toISOString(),
    rounds,
    memoryMiB: Number(values['memory-mib']),
    succeeded: outcomes.length - failures.length,
    failures,
    downtimeMs: {
      p50: quantile(downtimes, 0.5),
      p90: quantile(downtimes, 0.9),
      p99: quantile(downtimes, 0.99),
      max: Math.max(...downtimes),
      lastTenOverFirstTen: quantile(last, 0.5) / quantile(first, 0.5),
    },
    runcInPlaceMs: runcMs,
    p50OverRuncInPlace: Number((quantile(downtimes, 0.5) / runcMs).toFixed(2)),
    processes: { afterWarmup: start, end },
    finalCheck: check,
  });
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
