// What every benchmark shares: the median of its runs, and where it leaves its figures,
// bench/results/NAME.json (bench/report.ts makes the README's summary from those files).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from '../cluster/processes.ts';

/** The middle run (the upper of the two middle ones for an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function writeResults(name: string, value: unknown): Promise<void> {
  const file = path.join(REPO_ROOT, 'bench/results', `${name}.json`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(value, null, 2) + '\n');
  console.log(`results written to ${path.relative(process.cwd(), file)}`);
}
