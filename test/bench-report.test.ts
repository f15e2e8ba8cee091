// The README's performance summary is what bench/results say: a benchmark run that rewrote its
// results without `bench/report.ts --write` (or a README edited by hand) fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { summary, withSummary } from '../bench/report.ts';

const root = path.join(import.meta.dirname, '..');

test('the README’s performance summary is made from bench/results', async () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const table = await summary(path.join(root, 'bench/results'));
  assert.equal(readme, withSummary(readme, table), 'run: node --import tsx bench/report.ts --write');
});
