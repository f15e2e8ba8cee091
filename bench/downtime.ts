// Downtime of a ferry migration between two local nodes against the bare baseline measured in the
// same run: `runc checkpoint` + `runc restore` of the same workload on one node, images on the
// node's tmpfs, no transfer. Prints the ratio per memory size and writes bench/results/downtime.json.
//
//   node --import tsx bench/downtime.ts [--sizes 64,256,1024] [--runs 3]
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Runc } from '../agent/runtime/runc.ts';
import { clusterDown, clusterUp } from '../cluster/cluster.ts';
import { REPO_ROOT } from '../cluster/processes.ts';
import { connect } from '../cli/client.ts';
import { bytes, ms, table } from '../cli/format.ts';
import { exec } from '../lib/exec.ts';
import { FERRY_OPT, nodePaths } from '../lib/paths.ts';
import { list, migrate, runWorkload, unique, verify } from '../test/helpers.ts';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '64,256,1024' },
    runs: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
  },
});
const sizes = values.sizes.split(',').map(Number);
const runs = Number(values.runs);
const CLUSTER = 'bench';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  console.log(
    `ferry downtime benchmark: sizes ${sizes.join(', ')} MiB, ${runs} run(s) each, median reported`,
  );
  await clusterUp({
    name: CLUSTER,
    nodes: 2,
    subnet: '10.79.0',
    faultHooks: false,
    diskGiB: 8,
    imagesGiB: 6,
  });
  const c = await connect(CLUSTER);
  const node1 = nodePaths(CLUSTER, 'node1');
  const runc = new Runc(node1.runcRoot, path.join(FERRY_OPT, 'bin/criu'));
  const rows = [];
  try {
    for (const size of sizes) {
      const baseline: number[] = [];
      const ferry: Array<{
        downtime: number;
        total: number;
        dump: number;
        transfer: number;
        restore: number;
        bytes: number;
        throughput: number;
      }> = [];
      for (let r = 0; r < runs; r++) {
        // Baseline: the same workload, checkpointed and restored in place by runc + CRIU.
        const id = unique(`base${size}`);
        await runWorkload(c, 'node1', id, size);
        const images = path.join(node1.imagesDir, `baseline-${id}`);
        const bundle = path.join(node1.fsRoot, 'containers', id);
        await mkdir(images, { recursive: true, mode: 0o700 });
        const t0 = performance.now();
        await exec(
          'runc',
          [
            '--root',
            node1.runcRoot,
            '--criu',
            runc.criuPath,
            'checkpoint',
            '--image-path',
            `${images}/img`,
            '--work-path',
            `${images}/work`,
            id,
          ],
          { errorCode: 'CriuDumpFailed' },
        );
        await runc.restore(id, bundle, `${images}/img`, `${images}/work-restore`);
        baseline.push(performance.now() - t0);
        const v = await verify(c, 'node1', id);
        if (!v.pass) throw new Error(`baseline restore broke the workload: ${v.line}`);
        await c.bus.call('node1', { kind: 'remove', container: id });
        await rm(images, { recursive: true, force: true });

        // ferry: the same workload moved node1 -> node2.
        const mid = unique(`mv${size}`);
        await runWorkload(c, 'node1', mid, size);
        const m = await migrate(c, unique('bench'), { node: 'node1', container: mid }, 'node2');
        if (m.status.phase !== 'Succeeded') throw new Error(`migration failed: ${m.status.failureReason}`);
        const after = await verify(c, 'node2', mid);
        if (!after.pass) throw new Error(`migrated workload failed its check: ${after.line}`);
        const s = m.status.migrationState!;
        const ts = m.status.phaseTransitionTimestamps;
        ferry.push({
          downtime: s.downtimeMs!,
          total: Date.parse(ts.at(-1)!.time) - Date.parse(ts[0]!.time),
          dump: s.dumpMs!,
          transfer: s.transferMs!,
          restore: s.restoreMs!,
          bytes: (s.bytesBeforeFreeze ?? 0) + (s.bytesDuringFreeze ?? 0),
          throughput: s.throughputBytesPerSecond!,
        });
        await c.bus.call('node2', { kind: 'remove', container: mid });
        process.stdout.write(
          `  ${size} MiB run ${r + 1}: baseline ${ms(baseline.at(-1))}, ferry downtime ${ms(ferry.at(-1)!.downtime)}\n`,
        );
      }
      const pick = (k: keyof (typeof ferry)[number]) => median(ferry.map((f) => f[k]));
      const row = {
        memoryMiB: size,
        baselineMs: Math.round(median(baseline)),
        ferryDowntimeMs: pick('downtime'),
        ratio: Number((pick('downtime') / median(baseline)).toFixed(2)),
        ferryTotalMs: pick('total'),
        dumpMs: pick('dump'),
        transferMs: pick('transfer'),
        restoreMs: pick('restore'),
        bytesSent: pick('bytes'),
        transferBytesPerSecond: pick('throughput'),
        baselineRunsMs: baseline.map(Math.round),
        ferryDowntimeRunsMs: ferry.map((f) => f.downtime),
      };
      rows.push(row);
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
        'BASELINE (runc C/R)',
        'FERRY DOWNTIME',
        'RATIO',
        'DUMP',
        'TRANSFER',
        'RESTORE',
        'SENT',
        'RATE',
        'FERRY TOTAL',
      ],
      rows.map((r) => [
        `${r.memoryMiB} MiB`,
        ms(r.baselineMs),
        ms(r.ferryDowntimeMs),
        `${r.ratio}x`,
        ms(r.dumpMs),
        ms(r.transferMs),
        ms(r.restoreMs),
        bytes(r.bytesSent),
        `${bytes(r.transferBytesPerSecond)}/s`,
        ms(r.ferryTotalMs),
      ]),
    ),
  );
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
      'median of runs; baseline = runc checkpoint + runc restore in place on node1 (images on tmpfs); ferry downtime = freeze on node1 to running on node2',
    runs,
    rows,
  };
  const file = path.join(REPO_ROOT, 'bench/results/downtime.json');
  await writeFile(file, JSON.stringify(out, null, 2) + '\n');
  console.log(`\nresults written to ${path.relative(process.cwd(), file)}`);
}

void main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
