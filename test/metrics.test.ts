// Prometheus metrics from the test cluster's controller: after a migration, /metrics counts it,
// has its downtime in the histogram, and reports agents and their queues.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '../cli/client.ts';
import { controllerUrl, migrate, runWorkload, testCluster, unique } from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

const value = (text: string, series: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : NaN;
};

test('/metrics counts migrations, their downtime, agents and queues, in Prometheus names', async () => {
  const container = unique('metrics');
  await runWorkload(c, 'node1', container, 8);
  const m = await migrate(c, unique('m-metrics'), { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const res = await fetch(`${await controllerUrl()}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  assert.ok(value(text, 'ferry_migrations_completed_total{outcome="succeeded"}') >= 1);
  assert.ok(value(text, 'ferry_migration_downtime_seconds_count') >= 1);
  assert.ok(value(text, 'ferry_migration_duration_seconds_count') >= 1);
  assert.ok(value(text, 'ferry_migration_transferred_bytes_total{when="before_freeze"}') > 0);
  assert.ok(value(text, 'ferry_migrations{phase="Succeeded"}') >= 1);
  assert.equal(value(text, 'ferry_agent_up{node="node1",criu_ok="true"}'), 1);
  assert.ok(value(text, 'ferry_queue_jobs{node="node2",state="waiting"}') >= 0);
  assert.match(text, /# HELP ferry_migration_downtime_seconds Frozen on the source/);
  await c.bus.call('node2', { kind: 'remove', container });
});

test('a Migration that fails while Pending is counted as failed', async () => {
  const read = async () =>
    value(
      await (await fetch(`${await controllerUrl()}/metrics`)).text(),
      'ferry_migrations_completed_total{outcome="failed"}',
    ) || 0;
  const before = await read();
  const m = await migrate(c, unique('m-nowhere'), { node: 'node1', container: unique('none') }, 'node9');
  assert.equal(m.status.phase, 'Failed');
  assert.deepEqual(
    m.status.phaseTransitionTimestamps.map((t) => t.phase),
    ['Pending', 'Failed'],
  );
  // Counted just after the status write and its Event: give the controller that moment.
  for (let i = 0; i < 50 && (await read()) < before + 1; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await read(), before + 1);
});
