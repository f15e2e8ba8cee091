// The fault matrix: for each phase of a real local-cluster migration and each fault of
// test/faults.ts, hold the phase at its named hook, strike, let it go on, and check that the
// workload ends up running exactly once (on the source or the target) passing its own state check,
// that the Migration ended Succeeded or Failed with a reason naming the fault, and that nothing is
// left behind: no frozen process, no images or snapshots, no SSH session, no job. A full run writes
// the outcomes to docs/fault-matrix.md.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_VERSION, TERMINAL_PHASES, type StoredMigration } from '../api/v1alpha1/migration.ts';
import { keyspace } from '../lib/keyspace.ts';
import type { Client } from '../cli/client.ts';
import { bytes, ms } from '../cli/format.ts';
import { netnsName } from '../cluster/netns.ts';
import { exec } from '../lib/exec.ts';
import { FAULTS, PHASE_POINTS, type Fault, type MatrixPhase } from './faults.ts';
import { armHook, CLUSTER, leftovers, list, runWorkload, testCluster, unique, verify } from './helpers.ts';

const PHASES = Object.keys(PHASE_POINTS) as MatrixPhase[];
const DOC = 'docs/fault-matrix.md';

interface Outcome {
  phase: MatrixPhase;
  fault: string;
  result: string;
  detail: string;
}
const outcomes: Outcome[] = [];
let c: Client;

before(async () => (c = await testCluster()));
after(async () => {
  await c.close();
  if (outcomes.length === PHASES.length * FAULTS.length) await writeFile(DOC, table(outcomes));
});

/** Waits for `check` to hold, up to `ms`; resolves to whether it did. */
async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(100)) if (await check()) return true;
  return check();
}

async function ended(name: string): Promise<StoredMigration> {
  let m: StoredMigration | undefined;
  const done = await until(async () => {
    m = await c.store.get('default', name).catch(() => undefined); // Redis may be restarting
    return m !== undefined && TERMINAL_PHASES.includes(m.status.phase);
  }, 240_000);
  assert.ok(done, `${name} did not end: ${m?.status.phase}`);
  return m!;
}

/** Established SSH sessions between the agents, seen from a node. */
async function sshSessions(node: string): Promise<number> {
  const r = await exec('nsenter', [
    `--net=/run/netns/${netnsName(CLUSTER, node)}`,
    'ss',
    '-Htn',
    'state',
    'established',
    '( sport = :2222 or dport = :2222 )',
  ]);
  return r.stdout.split('\n').filter(Boolean).length;
}

/** Jobs of a migration that have not ended, on both nodes' queues. */
async function liveJobs(uid: string): Promise<string[]> {
  const out: string[] = [];
  for (const node of ['node1', 'node2'])
    for (const j of await c.bus.queue(node).getJobs(['waiting', 'active', 'delayed', 'prioritized']))
      if (j?.id?.startsWith(uid)) out.push(`${node}:${j.id}`);
  return out;
}

async function cell(fault: Fault, phase: MatrixPhase): Promise<Outcome> {
  const na = fault.notApplicable?.[phase];
  if (na) return { phase, fault: fault.name, result: 'n/a', detail: na };
  const container = unique('fm');
  const name = unique('m-fm');
  const release = unique('release');
  await runWorkload(c, 'node1', container, 16);
  const before = await verify(c, 'node1', container);
  const { node, point } = PHASE_POINTS[phase];
  await armHook(c, node, point, { action: 'block', release, migration: name });
  await c.store.create({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: {
      source: { node: 'node1', container },
      target: { node: 'node2' },
      strategy: { mode: 'StopAndCopy', compression: 'None' },
      timeouts: { progressTimeout: '45s' },
    },
  });
  // The step reached its hook: the hook is taken (and the step held) once it is gone from Redis.
  const held = await until(
    async () => !(await c.redis.hexists(keyspace.agentHooks(CLUSTER, node), point)),
    60_000,
  );
  assert.ok(held, `${phase} never reached ${point}`);
  const env = {
    c,
    name,
    phase,
    release: async () => void (await c.redis.set(keyspace.hookRelease(CLUSTER, release), '1')),
  };
  await fault.strike(env);
  const m = await ended(name);
  await fault.heal?.(env);
  await c.redis.del(keyspace.hookRelease(CLUSTER, release));

  // Exactly one copy runs, where the outcome says, and passes its own check.
  const [on1, on2] = [
    (await list(c, 'node1')).find((x) => x.id === container),
    (await list(c, 'node2')).find((x) => x.id === container),
  ];
  const home = m.status.phase === 'Succeeded' ? 'node2' : 'node1';
  const [here, other] = home === 'node2' ? [on2, on1] : [on1, on2];
  assert.equal(
    here?.status,
    'running',
    `${phase}/${fault.name}: ${m.status.phase} but not running on ${home}`,
  );
  assert.equal(
    other,
    undefined,
    `${phase}/${fault.name}: a second copy (${other?.status}) on the other node`,
  );
  const v = await verify(c, home, container);
  assert.ok(v.pass && v.counter! > before.counter!, `${home}: ${v.line}`);
  if (m.status.phase === 'Failed') assert.match(m.status.failureReason ?? '', fault.reason);

  // Nothing left behind.
  for (const n of ['node1', 'node2'])
    assert.ok(
      await until(async () => (await leftovers(n, m.metadata.uid)).length === 0, 10_000),
      `${n} keeps ${(await leftovers(n, m.metadata.uid)).join(', ')}`,
    );
  assert.ok(await until(async () => (await liveJobs(m.metadata.uid)).length === 0, 10_000), 'jobs left');
  for (const n of ['node1', 'node2'])
    assert.ok(await until(async () => (await sshSessions(n)) === 0, 10_000), `SSH sessions left on ${n}`);
  await c.bus.call(home, { kind: 'remove', container });

  const s = m.status.migrationState;
  return {
    phase,
    fault: fault.name,
    result: m.status.phase,
    detail:
      m.status.phase === 'Succeeded'
        ? `downtime ${ms(s?.downtimeMs)}, ${bytes((s?.bytesBeforeFreeze ?? 0) + (s?.bytesDuringFreeze ?? 0))}${m.status.warnings?.length ? `; warning: ${m.status.warnings[0]}` : ''}`
        : (m.status.failureReason ?? ''),
  };
}

for (const fault of FAULTS)
  for (const phase of PHASES)
    test(`${fault.name} during ${phase}: the workload runs exactly once, intact, nothing left behind`, async () => {
      outcomes.push(await cell(fault, phase));
    });

/** The matrix as Markdown: phases down, faults across, then every outcome in full. */
function table(rows: Outcome[]): string {
  const mark = (o: Outcome) =>
    o.result === 'n/a' ? 'n/a' : o.result === 'Succeeded' ? 'moved' : 'rolled back';
  const lines = [
    '# Fault matrix',
    '',
    'Generated by `test/fault-matrix.test.ts` (part of `scripts/test.sh`, so of CI) on the local',
    'cluster: a real migration of a 16 MiB workload from node1 to node2 for every cell, held at the',
    "phase's named hook while the fault strikes. In every cell that ran, the workload ended up running",
    'exactly once, passing its own state check, with no frozen process, no images, snapshots, SSH',
    'sessions or jobs left on either node. **moved**: the migration succeeded despite the fault;',
    '**rolled back**: it failed with the reason below, and the source runs on.',
    '',
    `| phase | ${FAULTS.map((f) => f.name).join(' | ')} |`,
    `| --- | ${FAULTS.map(() => '---').join(' | ')} |`,
    ...PHASES.map(
      (p) =>
        `| ${p} | ${FAULTS.map((f) => mark(rows.find((r) => r.phase === p && r.fault === f.name)!)).join(' | ')} |`,
    ),
    '',
    '## Every cell',
    '',
    '| phase | fault | outcome | detail |',
    '| --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.phase} | ${r.fault} | ${r.result} | ${r.detail.replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`,
    ),
    '',
  ];
  return lines.join('\n');
}
