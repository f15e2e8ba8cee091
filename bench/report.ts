// The README's performance summary, made from bench/results/*.json and nothing else: each figure
// as the benchmark wrote it, as a ratio to the baseline it measured in the same run, beside the
// goal it is held to (issue 18). `--write` puts it into README.md between its markers;
// test/bench-report.test.ts fails when the README's copy and the results disagree.
//   node --import tsx bench/report.ts [--write]
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { format } from 'prettier';

export const BEGIN = '<!-- bench-summary:begin (bench/report.ts --write makes this table) -->';
export const END = '<!-- bench-summary:end -->';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const x = (n: number) => `${n.toFixed(2)}×`;
const msOrS = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${Math.round(n)} ms`);
const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
const size = (m: number) => (m >= 1024 ? `${m / 1024} GiB` : `${m} MiB`);
const day = (iso: string | undefined) => (iso ?? '?').slice(0, 10);

function read(dir: string, name: string): Json {
  return JSON.parse(readFileSync(path.join(dir, `${name}.json`), 'utf8')) as Json;
}

/** The summary table, as Markdown laid out the way Prettier keeps the README, from `dir`'s results. */
export async function summary(dir: string): Promise<string> {
  return (await format(rawSummary(dir), { parser: 'markdown' })).trim();
}

function rawSummary(dir: string): string {
  const down = read(dir, 'downtime');
  const soak = read(dir, 'soak');
  const transfer = read(dir, 'transfer');
  const fs = read(dir, 'filesystem');
  const scale = read(dir, 'controller-scale');
  const runtimes = read(dir, 'runtimes');
  const pods = read(dir, 'pod-downtime');
  const stop = (down.rows as Json[]).filter((r) => r.mode === 'StopAndCopy');
  const per = (f: (r: Json) => string) => stop.map((r) => `${size(r.memoryMiB)} ${f(r)}`).join(', ');
  const ssh = (transfer.rows as Json[])[1]!;
  const pages = (transfer.pageStream?.rows ?? []) as Json[];
  const [s100, s1000] = [(scale.rows as Json[])[0]!, (scale.rows as Json[]).at(-1)!];
  const crun = (runtimes.rows as Json[]).filter((r) => r.runtime === 'crun');
  const rows: [string, string, string, string][] = [
    [
      'StopAndCopy downtime / bare `criu dump`+`restore`',
      per((r) => `${msOrS(r.ferryDowntimeMs)} (${x(r.ratio)})`),
      '≤ 2× at every size',
      `downtime.ts, ${day(down.date)}`,
    ],
    [
      'the same / `runc checkpoint`+`restore` in place',
      per((r) => x(r.ratioToRunc)),
      '≤ 1.3×',
      `downtime.ts, ${day(down.date)}`,
    ],
    [
      `small idle container (${soak.memoryMiB} MiB), freeze to running, p50 of ${soak.rounds}`,
      `${msOrS(soak.downtimeMs.p50)}${soak.p50OverRuncInPlace ? ` (${x(soak.p50OverRuncInPlace)} runc in place)` : ''}`,
      '≤ 300 ms',
      `soak.ts, ${day(soak.when)}`,
    ],
    [
      'ferry’s encrypted transfer / plain TCP (CPU s/GiB, both ends)',
      `${x(ssh.ratioToTcp)}${ssh.cpuSecondsPerGiB ? ` (${ssh.cpuSecondsPerGiB} against ${transfer.rows[0].cpuSecondsPerGiB})` : ''}`,
      '≥ 0.7',
      `transfer.ts, ${day(transfer.date)}`,
    ],
    ...(pages.length
      ? [
          [
            `page stream ${transfer.payloadMiB} MiB: SSH tunnel, CRIU TLS / plain page server`,
            `${x(pages[1]!.ratioToPlain)}, ${x(pages[2]!.ratioToPlain)}`,
            'the faster kept',
            `transfer.ts, ${day(transfer.date)}`,
          ] as [string, string, string, string],
        ]
      : []),
    [
      `running btrfs send through ferry / plain (${fs.volumeMiB} MiB)`,
      x(fs.runningSend.ratio),
      '≥ 0.9',
      `filesystem.ts, ${day(fs.date)}`,
    ],
    [
      `controller, ${s100.migrations} → ${s1000.migrations} migrations: its own transition latency p99`,
      `${msOrS(s100.controllerOwnP99Ms ?? s100.overheadP99Ms)} → ${msOrS(s1000.controllerOwnP99Ms ?? s1000.overheadP99Ms)}`,
      '≤ 50 ms, flat',
      `controller-scale.ts, ${day(scale.date)}`,
    ],
    [
      'the same: controller peak RSS',
      `${mib(s100.controllerPeakRssBytes)} → ${mib(s1000.controllerPeakRssBytes)}`,
      '≤ 200 MiB, flat',
      `controller-scale.ts, ${day(scale.date)}`,
    ],
    [
      'crun / runc, checkpoint + restore in place',
      crun.map((r) => `${size(r.memoryMiB)} ${x(r.ratioToRunc)}`).join(', '),
      'the faster used',
      `runtimes.ts, ${day(runtimes.date)}`,
    ],
    [
      'pod downtime / container downtime (containerd)',
      (pods.results as Json[]).map((r) => `${size(r.memoryMiB)} ${x(r.ratio)}`).join(', '),
      '—',
      `pod-downtime.ts, ${day(pods.date)}`,
    ],
  ];
  const head = '| figure | measured | goal | benchmark, run on |\n| --- | --- | --- | --- |';
  return [head, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** README text with the block between the markers replaced by `table`. */
export function withSummary(readme: string, table: string): string {
  const a = readme.indexOf(BEGIN);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${BEGIN} … ${END} block`);
  return `${readme.slice(0, a + BEGIN.length)}\n\n${table}\n\n${readme.slice(b)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = path.join(path.dirname(new URL(import.meta.url).pathname), '..');
  const { values } = parseArgs({ options: { write: { type: 'boolean', default: false } } });
  const table = await summary(path.join(root, 'bench/results'));
  if (!values.write) console.log(table);
  else {
    const file = path.join(root, 'README.md');
    writeFileSync(file, withSummary(readFileSync(file, 'utf8'), table));
    console.log('README.md: performance summary written from bench/results');
  }
}
