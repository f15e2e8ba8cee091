// The container runtime's fixed cost: `runc` (Debian 12's 1.1.5, what the agents use) against
// `crun` (Debian unstable's 1.28, built with CRIU; scripts/install-crun.sh installs it, Debian
// 12's 1.8.1 cannot checkpoint) checkpointing and restoring the same workload container in place,
// both through ferry's CRIU 4.2.1, images on the same disk. The workload checks its memory and
// its file after the last restore. Prints the medians and writes bench/results/runtimes.json.
//   node --import tsx bench/runtimes.ts [--sizes 32,256] [--runs 5]
import { median, writeResults } from './results-file.ts';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ms, table } from '../cli/format.ts';
import { exec } from '../lib/exec.ts';
import { FERRY_OPT } from '../lib/paths.ts';

const { values } = parseArgs({
  options: { sizes: { type: 'string', default: '32,256' }, runs: { type: 'string', default: '5' } },
});
const sizes = values.sizes.split(',').map(Number);
const runs = Number(values.runs);
const CRIU = path.join(FERRY_OPT, 'bin/criu');

/** Each runtime's command line up to the subcommand. */
const RUNTIMES: Record<string, string[]> = {
  runc: ['runc', '--criu', CRIU],
  crun: [path.join(FERRY_OPT, 'bin/crun')],
};

/** A bundle whose only file is ferry's static test workload, holding `mib` MiB and a counter file. */
async function makeBundle(dir: string, mib: number): Promise<void> {
  await mkdir(path.join(dir, 'rootfs/data'), { recursive: true });
  await copyFile(path.join(FERRY_OPT, 'bin/workload'), path.join(dir, 'rootfs/workload'));
  await exec('runc', ['spec', '--bundle', dir]);
  const spec = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')) as {
    process: { terminal: boolean; args: string[]; cwd: string };
    root: { readonly: boolean };
  };
  spec.process.terminal = false;
  spec.process.args = ['/workload', '--mem-mib', String(mib), '--dir', '/data'];
  spec.process.cwd = '/data';
  spec.root.readonly = false;
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(spec));
}

async function measure(runtime: string, mib: number, work: string) {
  const rt = RUNTIMES[runtime]!;
  // Detached: a started or restored container keeps its stdio, which must not be our pipes.
  const run = (args: string[], detached = false) =>
    exec(rt[0]!, [...rt.slice(1), ...args], { cwd: bundle, detached });
  const bundle = path.join(work, `${runtime}-${mib}`);
  const id = `ferry-rt-${runtime}-${mib}`;
  await makeBundle(bundle, mib);
  await run(['delete', '-f', id]).catch(() => undefined);
  await run(['run', '--detach', '--bundle', bundle, id], true);
  await sleep(1500); // its memory written
  const samples: { checkpoint: number; restore: number }[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      const images = path.join(work, `img-${runtime}-${mib}-${r}`);
      const t0 = performance.now();
      await run(['checkpoint', '--image-path', images, '--work-path', `${images}.work`, id]);
      const t1 = performance.now();
      await run(
        [
          'restore',
          '--detach',
          '--image-path',
          images,
          '--work-path',
          `${images}.rwork`,
          '--bundle',
          bundle,
          id,
        ],
        true,
      );
      const t2 = performance.now();
      samples.push({ checkpoint: t1 - t0, restore: t2 - t1 });
      await rm(images, { recursive: true, force: true });
      await sleep(300);
    }
    // Restored as often as it was checkpointed, the workload still holds what it held.
    const verdict = path.join(bundle, 'rootfs/data/verify.txt');
    await rm(verdict, { force: true });
    await run(['kill', id, 'USR1']);
    let line = '';
    for (let i = 0; i < 100 && !line.endsWith('\n'); i++) {
      await sleep(50);
      line = await readFile(verdict, 'utf8').catch(() => '');
    }
    if (!line.startsWith('PASS')) throw new Error(`${runtime} broke the workload: ${line || 'no verdict'}`);
  } finally {
    await run(['delete', '-f', id]).catch(() => undefined);
  }
  const checkpoint = median(samples.map((s) => s.checkpoint));
  const restore = median(samples.map((s) => s.restore));
  const total = median(samples.map((s) => s.checkpoint + s.restore));
  return {
    runtime,
    memoryMiB: mib,
    checkpointMs: Math.round(checkpoint),
    restoreMs: Math.round(restore),
    totalMs: Math.round(total),
  };
}

async function main() {
  const work = await mkdtemp('/var/lib/ferry/bench-runtimes-'); // mode 0700: images are private
  const rows: Awaited<ReturnType<typeof measure>>[] = [];
  try {
    for (const mib of sizes)
      for (const runtime of Object.keys(RUNTIMES)) {
        const r = await measure(runtime, mib, work);
        console.log(`  ${runtime} ${mib} MiB: checkpoint ${ms(r.checkpointMs)}, restore ${ms(r.restoreMs)}`);
        rows.push(r);
      }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const withRatio = rows.map((r) => {
    const base = rows.find((x) => x.runtime === 'runc' && x.memoryMiB === r.memoryMiB)!;
    return { ...r, ratioToRunc: Number((r.totalMs / base.totalMs).toFixed(2)) };
  });
  console.log('');
  console.log(
    table(
      ['RUNTIME', 'MEMORY', 'CHECKPOINT', 'RESTORE', 'TOTAL (median)', '/ RUNC'],
      withRatio.map((r) => [
        r.runtime,
        `${r.memoryMiB} MiB`,
        ms(r.checkpointMs),
        ms(r.restoreMs),
        ms(r.totalMs),
        `${r.ratioToRunc}×`,
      ]),
    ),
  );
  const versions = {
    runc: (await exec('runc', ['--version'])).stdout.split('\n')[0],
    crun: (await exec(RUNTIMES.crun![0]!, ['--version'])).stdout.split('\n')[0],
    criu: (await exec(CRIU, ['--version'])).stdout.split('\n')[0],
  };
  await writeResults('runtimes', {
    benchmark: 'runtimes',
    date: new Date().toISOString(),
    runs,
    versions,
    method:
      'median of runs; checkpoint = `<runtime> checkpoint` of a running container, restore = `<runtime> restore --detach` of it in place, same bundle and CRIU; the workload verifies its memory and file after the last restore',
    rows: withRatio,
  });
}

void main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
