// A real PostgreSQL (Debian's PostgreSQL 15, in an image scripts/build-image.sh builds from Debian's
// packages) moved while pgbench, PostgreSQL's own benchmark, runs against it from the host on
// connections it holds throughout. It runs as the postgres user, which CRIU can dump here only in a
// user namespace (the default: shared/environment.md), with its own address. After the move:
// pgbench reports no error and no aborted client, every transaction it reported committed is in
// pgbench_history, TPC-B's balances agree, and pg_amcheck finds every table and index sound.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Client } from '../cli/client.ts';
import { exec, run } from '../lib/exec.ts';
import { FERRY_HOME } from '../lib/paths.ts';
import { PG_BIN, pgbench, pgbenchInit, psql } from '../lib/workload-clients.ts';
import { list, migrate, testCluster, unique, until } from './helpers.ts';

// In the test cluster's subnet (10.78.0.0/24: the host is .1, the nodes .11 and .12).
const ADDRESS = '10.78.0.162';
const SCALE = 10;
const IMAGE = `oci:${FERRY_HOME}/images/oci:postgres`;

let c: Client;
before(async () => {
  c = await testCluster();
  await run('bash', ['scripts/build-image.sh', 'postgres']); // built once, then kept
});
after(async () => c.close());

test('PostgreSQL moves under pgbench: no client error, every committed transaction kept, tables and indexes sound', async () => {
  const container = unique('pg');
  await c.bus.call('node1', { kind: 'runImage', container, image: IMAGE, address: ADDRESS }, 180_000);
  await pgbenchInit(ADDRESS, SCALE);
  const logDir = await mkdtemp(path.join(tmpdir(), 'ferry-pgbench-'));
  try {
    // Long enough to outlast the move on a slow machine; it is checked below that it did.
    const bench = pgbench(ADDRESS, { clients: 4, seconds: 40, logDir });
    assert.ok(await until(async () => bench.progress.lines >= 3, 30_000), 'pgbench runs before the move');
    const m = await migrate(c, unique('m-pg'), { node: 'node1', container }, 'node2', {
      strategy: { mode: 'StopAndCopy' },
    });
    const linesAtEnd = bench.progress.lines;
    assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
    const report = await bench.done;
    const timeline = await bench.timeline();
    console.log(
      `postgres: scale ${SCALE}, ${report.processed} transactions committed, longest pause the clients saw ${Math.round(timeline.longestGap())} ms, ferry's downtime ${m.status.migrationState?.downtimeMs ?? '?'} ms`,
    );

    assert.ok(report.output.split('progress:').length - 1 > linesAtEnd, 'pgbench went on after the move');
    assert.equal(report.code, 0, `pgbench exits 0:\n${report.output.slice(-2000)}`);
    assert.ok(!report.aborted, 'no pgbench client aborted (no connection error)');
    assert.equal(report.failed, 0, 'no failed transaction');
    assert.ok(report.processed > 0);
    assert.equal(Number(await psql(ADDRESS, 'SELECT count(*) FROM pgbench_history')), report.processed);
    // TPC-B's invariant: each transaction adds the same delta to an account, its teller, its
    // branch, and writes it to the history.
    const sums = await psql(
      ADDRESS,
      'SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(delta) FROM pgbench_history)',
    );
    assert.equal(new Set(sums.split('|')).size, 1, `the balances agree: ${sums}`);
    const check = await exec(`${PG_BIN}/pg_amcheck`, [
      ...['-h', ADDRESS, '-U', 'postgres', '--install-missing', '--heapallindexed', 'postgres'],
    ]);
    assert.equal(check.code, 0, `pg_amcheck: ${check.stdout}${check.stderr}`);
    assert.ok((await list(c, 'node2')).some((x) => x.id === container && x.status === 'running'));
    assert.ok(!(await list(c, 'node1')).some((x) => x.id === container), 'gone from node1');
  } finally {
    await rm(logDir, { recursive: true, force: true });
  }
  await c.bus.call('node2', { kind: 'remove', container });
});
