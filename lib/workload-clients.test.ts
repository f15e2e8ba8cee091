import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePgbench, pgbenchTimeline } from './workload-clients.ts';

test("pgbench's report: committed and failed transactions, and an aborted client", () => {
  const ok = parsePgbench(
    0,
    'duration: 25 s\nnumber of transactions actually processed: 47056\nnumber of failed transactions: 0 (0.000%)\n',
  );
  assert.deepEqual([ok.processed, ok.failed, ok.aborted], [47056, 0, false]);
  const broken = parsePgbench(
    2,
    'pgbench: error: client 1 script 0 aborted in command 4 query 0: server closed the connection unexpectedly\nnumber of transactions actually processed: 812\n',
  );
  assert.deepEqual([broken.code, broken.processed, broken.aborted], [2, 812, true]);
  assert.ok(Number.isNaN(parsePgbench(1, 'connection refused').processed));
});

test("pgbench's per-transaction logs make one timeline, in order of ending, across clients", () => {
  const epoch = (performance.timeOrigin + 1000) / 1000; // one second after this process began
  const s = Math.floor(epoch);
  const us = Math.round((epoch - s) * 1e6);
  const line = (client: number, n: number, plusUs: number) => `${client} ${n} 1500 0 ${s} ${us + plusUs}`;
  const t = pgbenchTimeline([
    [line(0, 0, 0), line(0, 1, 2_000_000)].join('\n'),
    [line(1, 0, 500_000), 'not a line'].join('\n'),
  ]);
  assert.deepEqual(
    t.points.map((p) => p.done),
    [1, 2, 3],
  );
  assert.ok(Math.abs(t.points[0]!.at - 1000) < 1, 'moments on performance.now()’s clock');
  assert.ok(Math.abs(t.longestGap() - 1500) < 1, 'the longest pause between two transactions ending');
});
