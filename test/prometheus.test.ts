// The chart's Grafana dashboard against a REAL Prometheus (Debian's 2.42): Prometheus scrapes two
// controller replicas of the test cluster, the leader and a follower (the chart runs two), while
// a migration runs; then every panel's query is evaluated through Prometheus' HTTP API over that
// time. A query that returns nothing fails, and so does a value a follower would double: the
// agents up, the replicas leading, the migrations by phase, the completed count.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '../cli/client.ts';
import { nodeEntry } from '../cluster/processes.ts';
import { keyspace } from '../lib/keyspace.ts';
import { readyNodes } from '../lib/node-registry.ts';
import {
  CLUSTER,
  controllerUrl,
  METRICS_PORT,
  migrate,
  runWorkload,
  testCluster,
  unique,
} from './helpers.ts';

const FOLLOWER_PORT = METRICS_PORT + 1;
const PROMETHEUS_PORT = METRICS_PORT + 2;
const PROM = `http://127.0.0.1:${PROMETHEUS_PORT}`;

let c: Client;
let work: string;
const children: ChildProcess[] = [];

function start(cmd: string, args: string[], log: string): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  child.stdout!.on('data', (d: Buffer) => lines.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
  child.on('exit', () => void writeFile(path.join(work, log), lines.join('')).catch(() => undefined));
  children.push(child);
  return child;
}

/** An instant query's result vector, or a range query's matrix. */
async function query(q: string, range?: { start: number; end: number }) {
  const params = new URLSearchParams({ query: q });
  if (range) {
    params.set('start', String(range.start / 1000));
    params.set('end', String(range.end / 1000));
    params.set('step', '1');
  }
  const res = await fetch(`${PROM}/api/v1/${range ? 'query_range' : 'query'}?${params}`);
  const body = (await res.json()) as {
    status: string;
    error?: string;
    data: {
      result: { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[];
    };
  };
  assert.equal(body.status, 'success', `${q}: ${body.error}`);
  return body.data.result;
}

/** The single value of an instant query (NaN when it has none). */
const scalar = async (q: string) => Number((await query(q))[0]?.value?.[1] ?? NaN);

before(async () => {
  c = await testCluster();
  work = await mkdtemp(path.join(tmpdir(), 'ferry-prom-'));
  const leader = new URL(await controllerUrl());
  // The second replica the chart runs: it follows, the lease being the first one's.
  const [node, ...args] = nodeEntry('controller/main.ts', [
    '--cluster',
    CLUSTER,
    '--metrics-port',
    String(FOLLOWER_PORT),
  ]);
  start(node!, args, 'follower.log');
  const config = [
    'global: { scrape_interval: 1s, evaluation_interval: 1s }',
    'scrape_configs:',
    '  - job_name: ferry-controller',
    `    static_configs: [{ targets: ['${leader.host}', '127.0.0.1:${FOLLOWER_PORT}'] }]`,
  ].join('\n');
  await writeFile(path.join(work, 'prometheus.yml'), config);
  start(
    'prometheus',
    [
      `--config.file=${path.join(work, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(work, 'data')}`,
      `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`,
      '--log.level=warn',
    ],
    'prometheus.log',
  );
  // Both replicas scraped, and up.
  for (let i = 0; ; i++) {
    const up = await query('up{job="ferry-controller"} == 1').catch(() => []);
    if (up.length === 2) break;
    if (i > 300) throw new Error(`Prometheus does not scrape both replicas (up: ${JSON.stringify(up)})`);
    await sleep(100);
  }
});
after(async () => {
  for (const child of children) child.kill('SIGTERM');
  await sleep(500);
  await c.redis.hdel(keyspace.nodesSeen(CLUSTER), 'node9');
  await c.close();
  await rm(work, { recursive: true, force: true });
});

test('every panel of the Grafana dashboard returns data from a real Prometheus, and none counts a replica twice', async () => {
  const started = Date.now();
  // An agent that beat once and went silent: down, not absent.
  await c.redis.hset(keyspace.nodesSeen(CLUSTER), 'node9', String(Date.now() - 60_000));
  const container = unique('prom');
  await runWorkload(c, 'node1', container, 16);
  // Slowed down, so that Prometheus sees it under way, sending, with bytes left.
  const m = await migrate(c, unique('m-prom'), { node: 'node1', container }, 'node2', {
    strategy: { mode: 'StopAndCopy', bandwidth: '4Mi' },
  });
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  await sleep(3000); // a few scrapes after the end
  const range = { start: started, end: Date.now() };

  const dashboard = JSON.parse(await readFile('charts/ferry/files/grafana-dashboard.json', 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  for (const p of dashboard.panels)
    for (const t of p.targets) {
      const expr = t.expr.replaceAll('$__rate_interval', '1m');
      const series = await query(expr, range);
      const points = series.flatMap((s) => s.values ?? []).filter(([, v]) => !Number.isNaN(Number(v)));
      assert.ok(points.length > 0, `panel "${p.title}": ${expr} returned no data`);
    }

  // Each thing once, though two replicas are scraped.
  assert.equal(await scalar('count(up{job="ferry-controller"} == 1)'), 2);
  assert.equal(await scalar('sum(ferry_controller_leader)'), 1);
  const live = (await readyNodes(c.redis, CLUSTER)).size;
  assert.equal(await scalar('sum(ferry_agent_up)'), live, 'each live agent once');
  assert.equal(await scalar('ferry_agent_up{node="node9"}'), 0, 'node9 down, not absent');
  const text = await (await fetch(`${await controllerUrl()}/metrics`)).text();
  const leaderValue = (series: string) =>
    Number(
      text
        .split('\n')
        .find((l) => l.startsWith(`${series} `))
        ?.split(' ')[1] ?? NaN,
    );
  assert.equal(
    await scalar('sum(ferry_migrations{phase="Succeeded"})'),
    leaderValue('ferry_migrations{phase="Succeeded"}'),
  );
  assert.equal(
    await scalar('sum(ferry_migrations_completed_total{outcome="succeeded"})'),
    leaderValue('ferry_migrations_completed_total{outcome="succeeded"}'),
  );
  const follower = await (await fetch(`http://127.0.0.1:${FOLLOWER_PORT}/metrics`)).text();
  assert.match(follower, /^ferry_controller_leader 0$/m);
  assert.doesNotMatch(
    follower,
    /^ferry_(migrations|agent_up|queue_jobs)\{/m,
    'the follower serves no shared state',
  );
  // The migration was seen under way, sending, with bytes left.
  const seen = await query(
    `max_over_time(ferry_migration_data_remaining_bytes{name="${m.metadata.name}"}[5m])`,
  );
  assert.ok(seen.length > 0, 'its bytes left were scraped while it sent');
  await c.bus.call('node2', { kind: 'remove', container });
});
