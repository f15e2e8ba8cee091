// Downtime and total time of a ferry migration between two local nodes, per memory strategy,
// against baselines measured in the same run on one node, images on its tmpfs, no transfer: bare
// `criu dump` + `criu restore` of the same workload program as a plain process, and `runc
// checkpoint` + `runc restore` of the same workload container. A strategy the nodes cannot run (PreCopy without
// soft-dirty tracking, PostCopy where lazy pages fail) is reported with the reason preflight gave.
// Prints each ratio and writes bench/results/downtime.json.
//
//   node --import tsx bench/downtime.ts [--sizes 64,256,1024] [--runs 3] [--modes StopAndCopy,PostCopy,PreCopy]
import { median, writeResults } from './results-file.ts';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { clusterDown } from '../cluster/cluster.ts';
import { BENCH_CLUSTER as CLUSTER, upBenchCluster } from './bench-cluster.ts';
import { runcInPlace } from './runc-baseline.ts';
import { netnsName } from '../cluster/netns.ts';
import { connect } from '../cli/client.ts';
import { bytes, ms, table } from '../cli/format.ts';
import { exec } from '../lib/exec.ts';
import { FERRY_OPT, nodePaths } from '../lib/paths.ts';
import { list, migrate, runWorkload, unique, verify } from '../test/helpers.ts';
import type { Mode } from '../api/v1alpha1/migration.ts';
import { Job as BullJob } from 'bullmq';
import { keyspace } from '../lib/keyspace.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '64,256,1024' },
    runs: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'StopAndCopy,PostCopy,PreCopy' },
    keep: { type: 'boolean', default: false },
  },
});
const modes = values.modes.split(',') as Mode[];
const sizes = values.sizes.split(',').map(Number);
const runs = Number(values.runs);
interface Sample {
  downtime: number;
  total: number;
  dump: number;
  transfer: number;
  restore: number;
  bytes: number;
  /** The freeze's critical path, segment by segment: they add up to the downtime. */
  path: Record<string, number>;
}

/** The segments of a StopAndCopy freeze, in order (criticalPath). */
const SEGMENTS = [
  'freeze+dump (pages streamed)',
  'hand-off to transfer',
  'transfer (other images)',
  'hand-off to restore',
  'restore (to running)',
] as const;

/**
 * Where a freeze's time went, from the agent's frozenAt and restoredAt and the jobs' start and end
 * times as BullMQ recorded them (the agents' clocks: one machine here): each segment ends where
 * the next begins, so they add up to the downtime. Pure.
 */
export function criticalPath(
  frozenAt: number,
  jobs: { checkpoint: { end: number }; transfer: { start: number; end: number }; restore: { start: number } },
  restoredAt: number,
): Record<string, number> {
  const marks = [
    frozenAt,
    jobs.checkpoint.end,
    jobs.transfer.start,
    jobs.transfer.end,
    jobs.restore.start,
    restoredAt,
  ];
  return Object.fromEntries(SEGMENTS.map((name, i) => [name, marks[i + 1]! - marks[i]!]));
}

async function main() {
  console.log(
    `ferry downtime benchmark: sizes ${sizes.join(', ')} MiB, ${runs} run(s) each, median reported`,
  );
  await upBenchCluster();
  const c = await connect(CLUSTER);
  const node1 = nodePaths(CLUSTER, 'node1');
  const rows = [];
  const unavailable = new Map<Mode, string>();

  /**
   * The baseline the issue names: bare `criu dump` + `criu restore` of the same workload program,
   * as a plain process in node1's network namespace, images on node1's tmpfs, no container.
   */
  async function bareCriuRun(size: number): Promise<number> {
    const dir = await mkdtemp(path.join(node1.imagesDir, 'bare-'));
    const data = path.join(dir, 'data');
    await mkdir(data);
    const ns = `--net=/run/netns/${netnsName(CLUSTER, 'node1')}`;
    const workload = spawn(
      'nsenter',
      [ns, path.join(FERRY_OPT, 'bin/workload'), '--mem-mib', String(size)].concat([
        '--interval-ms',
        '20',
        '--dir',
        data,
      ]),
      { detached: true, stdio: 'ignore' },
    );
    workload.unref();
    for (let i = 0; i < 600 && !existsSync(path.join(data, 'ready')); i++) await sleep(100);
    const criu = path.join(FERRY_OPT, 'bin/criu');
    const pidFile = path.join(dir, 'restored.pid');
    const t0 = performance.now();
    await exec('nsenter', [ns, criu, 'dump', '-t', String(workload.pid), '-D', dir, '-o', 'dump.log'], {
      errorCode: 'CriuDumpFailed',
    });
    await exec('nsenter', [ns, criu, 'restore', '-D', dir, '-d', '--pidfile', pidFile, '-o', 'restore.log'], {
      errorCode: 'CriuRestoreFailed',
    });
    const took = performance.now() - t0;
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    await rm(path.join(data, 'verify.txt'), { force: true });
    process.kill(pid, 'SIGUSR1');
    let line = '';
    for (let i = 0; i < 100 && !line.endsWith('\n'); i++) {
      await sleep(50);
      line = await readFile(path.join(data, 'verify.txt'), 'utf8').catch(() => '');
    }
    process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
    if (!line.startsWith('PASS')) throw new Error(`bare CRIU restore broke the workload: ${line}`);
    return took;
  }

  /** The same workload moved node1 -> node2 with `mode`; the refusal's reason if the nodes cannot. */
  async function ferryRun(size: number, mode: Mode): Promise<Sample | string> {
    const mid = unique(`mv${size}`);
    await runWorkload(c, 'node1', mid, size);
    const m = await migrate(c, unique('bench'), { node: 'node1', container: mid }, 'node2', {
      strategy: { mode },
    });
    if (m.status.phase !== 'Succeeded') {
      await c.bus.call('node1', { kind: 'remove', container: mid });
      if (/FeatureUnsupported/.test(m.status.failureReason ?? '')) return m.status.failureReason!;
      throw new Error(`${mode} migration failed: ${m.status.failureReason}`);
    }
    const after = await verify(c, 'node2', mid);
    if (!after.pass) throw new Error(`migrated workload failed its check: ${after.line}`);
    await c.bus.call('node2', { kind: 'remove', container: mid });
    const s = m.status.migrationState!;
    const ts = m.status.phaseTransitionTimestamps;
    const job = async (node: string, step: string) => {
      const j = await BullJob.fromId(c.bus.queue(node), keyspace.jobId(m.metadata.uid, step));
      return { start: j?.processedOn ?? NaN, end: j?.finishedOn ?? NaN };
    };
    const path =
      mode === 'StopAndCopy'
        ? criticalPath(
            Date.parse(s.frozenAt!),
            {
              checkpoint: await job('node1', 'checkpoint'),
              transfer: await job('node1', 'transfer'),
              restore: await job('node2', 'restore'),
            },
            Date.parse(s.restoredAt!),
          )
        : {};
    return {
      path,
      downtime: s.downtimeMs!,
      total: Date.parse(ts.at(-1)!.time) - Date.parse(ts[0]!.time),
      dump: s.dumpMs!,
      transfer: s.transferMs!,
      restore: s.restoreMs!,
      bytes: (s.bytesBeforeFreeze ?? 0) + (s.bytesDuringFreeze ?? 0),
    };
  }

  try {
    for (const size of sizes) {
      const baseline: number[] = [];
      const runcBaseline: number[] = [];
      for (let r = 0; r < runs; r++) {
        baseline.push(await bareCriuRun(size));
        runcBaseline.push(await runcInPlace(c, CLUSTER, size));
        process.stdout.write(
          `  ${size} MiB baselines run ${r + 1}: bare CRIU ${ms(baseline.at(-1))}, runc ${ms(runcBaseline.at(-1))}\n`,
        );
      }
      for (const mode of modes) {
        if (unavailable.has(mode)) continue;
        const ferry: Sample[] = [];
        for (let r = 0; r < runs; r++) {
          const got = await ferryRun(size, mode);
          if (typeof got === 'string') {
            unavailable.set(mode, got);
            console.log(`  ${mode}: not run on these nodes: ${got}`);
            break;
          }
          ferry.push(got);
          process.stdout.write(
            `  ${size} MiB ${mode} run ${r + 1}: downtime ${ms(got.downtime)}, total ${ms(got.total)}\n`,
          );
        }
        if (!ferry.length) continue;
        const pick = (k: Exclude<keyof Sample, 'path'>) => median(ferry.map((f) => f[k]));
        rows.push({
          memoryMiB: size,
          mode,
          baselineMs: Math.round(median(baseline)),
          runcBaselineMs: Math.round(median(runcBaseline)),
          ratioToRunc: Number((pick('downtime') / median(runcBaseline)).toFixed(2)),
          ferryDowntimeMs: pick('downtime'),
          ratio: Number((pick('downtime') / median(baseline)).toFixed(2)),
          ferryTotalMs: pick('total'),
          totalRatio: Number((pick('total') / median(baseline)).toFixed(2)),
          dumpMs: pick('dump'),
          transferMs: pick('transfer'),
          restoreMs: pick('restore'),
          bytesSent: pick('bytes'),
          // The median run's critical path (the run whose downtime is the median).
          criticalPathMs: ferry.find((f) => f.downtime === pick('downtime'))?.path ?? {},
          baselineRunsMs: baseline.map(Math.round),
          ferryDowntimeRunsMs: ferry.map((f) => f.downtime),
        });
      }
    }
    if ((await list(c, 'node1')).length || (await list(c, 'node2')).length)
      console.warn('warning: containers left on the bench cluster');
  } finally {
    await c.close();
    if (!values.keep) await clusterDown(CLUSTER);
  }

  console.log('');
  console.log(
    table(
      [
        'MEMORY',
        'STRATEGY',
        'BARE CRIU C/R',
        'RUNC C/R',
        'DOWNTIME',
        'RATIO',
        'VS RUNC',
        'TOTAL',
        'RATIO',
        'DUMP+STREAM',
        'TRANSFER',
        'RESTORE',
        'SENT',
      ],
      rows.map((r) => [
        `${r.memoryMiB} MiB`,
        r.mode,
        ms(r.baselineMs),
        ms(r.runcBaselineMs),
        ms(r.ferryDowntimeMs),
        `${r.ratio}x`,
        `${r.ratioToRunc}x`,
        ms(r.ferryTotalMs),
        `${r.totalRatio}x`,
        ms(r.dumpMs),
        ms(r.transferMs),
        ms(r.restoreMs),
        bytes(r.bytesSent),
      ]),
    ),
  );
  for (const [mode, why] of unavailable) console.log(`${mode}: not measured: ${why}`);
  const paths = rows.filter((r) => Object.keys(r.criticalPathMs).length);
  if (paths.length) {
    console.log('\nwhere a StopAndCopy freeze goes (the median run; the segments add up to its downtime):');
    console.log(
      table(
        ['MEMORY', ...SEGMENTS, 'DOWNTIME'],
        paths.map((r) => [
          `${r.memoryMiB} MiB`,
          ...SEGMENTS.map((seg) => ms(r.criticalPathMs[seg])),
          ms(r.ferryDowntimeMs),
        ]),
      ),
    );
  }
  const criu = (await exec(path.join(FERRY_OPT, 'bin/criu'), ['--version'])).stdout.match(
    /Version: (\S+)/,
  )?.[1];
  const out = {
    benchmark: 'downtime',
    date: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      kernel: os.release(),
      criu,
    },
    method:
      "median of runs; baseline = bare criu dump + criu restore of the same workload program as a plain process in node1 (images on tmpfs); runc baseline = runc checkpoint + runc restore of the workload container in place on node1; downtime = freeze on node1 to running on node2; total = Migration created to Succeeded; ratios are downtime and total over the bare baseline; criticalPathMs = the median run's freeze split at the agents' frozenAt and restoredAt and the checkpoint, transfer and restore jobs' start and end as BullMQ recorded them (hand-offs are the controller's turns between jobs)",
    runs,
    rows,
    unavailable: Object.fromEntries(unavailable),
  };
  await writeResults('downtime', out);
}

void main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
