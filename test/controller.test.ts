// The controller on a real local cluster: abort and deletion at the next safe point, concurrency
// limits, and crash safety (the controller killed right after each phase change and restarted).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '../cli/client.ts';
import { waitForMigration } from '../cli/watch.ts';
import { runningPid } from '../cluster/processes.ts';
import { keyspace } from '../lib/keyspace.ts';
import { routeOf } from '../controller/reconcile.ts';
import { API_VERSION, PHASES, type Phase, type StoredMigration } from '../api/v1alpha1/migration.ts';
import { clusterDir } from '../lib/paths.ts';
import {
  CLUSTER,
  armHook,
  leftovers,
  list,
  phases,
  runWorkload,
  testCluster,
  unique,
  upTestCluster,
  verify,
} from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

async function start(name: string, container: string, source = 'node1', target = 'node2'): Promise<void> {
  await c.store.create({
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: { name, namespace: 'default' },
    spec: { source: { node: source, container }, target: { node: target } },
  });
}

async function waitPhase(name: string, phase: Phase): Promise<StoredMigration> {
  for (let i = 0; i < 600; i++) {
    const m = await c.store.get('default', name);
    if (m && phases(m).includes(phase)) return m;
    await sleep(50);
  }
  const m = await c.store.get('default', name);
  throw new Error(
    `${name} never reached ${phase}: it is ${m?.status.phase} (${JSON.stringify(m?.status.conditions ?? [])})`,
  );
}

const release = (key: string) => c.redis.set(keyspace.hookRelease(CLUSTER, key), '1');

async function sourceIntact(container: string, counter: number): Promise<void> {
  assert.equal((await list(c, 'node1')).find((x) => x.id === container)?.status, 'running');
  const v = await verify(c, 'node1', container);
  assert.ok(v.pass && v.counter! > counter, v.line);
  assert.ok(!(await list(c, 'node2')).some((x) => x.id === container), 'no copy on the target');
}

test('spec.abort during the transfer rolls back at the next safe point and the source resumes', async () => {
  const container = unique('abort');
  const name = unique('ab');
  const gate = unique('gate');
  await runWorkload(c, 'node1', container, 16);
  const v0 = await verify(c, 'node1', container);
  await armHook(c, 'node1', 'source.beforeTransfer', { action: 'block', release: gate, migration: name });
  await start(name, container);
  const running = await waitPhase(name, 'Transferring');
  await c.store.updateSpec('default', name, { ...running.spec, abort: true });
  await sleep(300); // the transfer is active: the controller must wait for it, not race it
  assert.equal((await c.store.get('default', name))?.status.phase, 'Transferring');
  await release(gate);
  const m = await waitForMigration(c, 'default', name, () => undefined);
  assert.equal(m.status.phase, 'Failed');
  assert.match(m.status.failureReason!, /Aborted: spec.abort was set/);
  assert.equal(m.status.migrationState?.abortStatus, 'Succeeded');
  assert.equal(m.metadata.generation, 2);
  await sourceIntact(container, v0.counter!);
  assert.deepEqual(await leftovers('node2', m.metadata.uid), []);
  await c.bus.call('node1', { kind: 'remove', container });
});

test('deleting a running Migration aborts it, rolls back, then removes it', async () => {
  const container = unique('del');
  const name = unique('del');
  const gate = unique('gate');
  await runWorkload(c, 'node1', container, 16);
  const v0 = await verify(c, 'node1', container);
  await armHook(c, 'node1', 'source.beforeTransfer', { action: 'block', release: gate, migration: name });
  await start(name, container);
  const { uid } = (await waitPhase(name, 'Transferring')).metadata;
  assert.equal(await c.store.delete('default', name), 'deleting');
  assert.ok((await c.store.get('default', name))?.metadata.deletionTimestamp, 'kept until rolled back');
  await release(gate);
  for (let i = 0; i < 600 && (await c.store.get('default', name)); i++) await sleep(50);
  assert.equal(await c.store.get('default', name), undefined, 'gone once rolled back');
  await sourceIntact(container, v0.counter!);
  // It ended before it went: its live mark is gone with it (it used to stay for a week).
  assert.equal(await c.redis.exists(keyspace.live(CLUSTER, uid)), 0, 'no live mark left behind');
});

test('two Migrations of one container applied together: one moves it, the other is refused naming it', async () => {
  const container = unique('twice');
  const [first, second] = [unique('one'), unique('two')];
  await runWorkload(c, 'node1', container, 16);
  const v0 = await verify(c, 'node1', container);
  await Promise.all([start(first, container), start(second, container)]);
  const ended = await Promise.all(
    [first, second].map((n) => waitForMigration(c, 'default', n, () => undefined)),
  );
  const moved = ended.filter((m) => m.status.phase === 'Succeeded');
  const refused = ended.filter((m) => m.status.phase === 'Failed');
  assert.equal(moved.length, 1, 'exactly one moves it');
  assert.equal(refused.length, 1, 'the other is refused');
  const holder = `default/${moved[0]!.metadata.name}`;
  assert.match(
    refused[0]!.status.failureReason!,
    new RegExp(`^WorkloadBusy: container ${container} on node1 is being moved by Migration ${holder}`),
  );
  assert.ok(
    !refused[0]!.status.phaseTransitionTimestamps.some((t) => t.phase === 'Checkpointing'),
    'refused before anything was frozen',
  );
  const v = await verify(c, 'node2', container);
  assert.ok(v.pass && v.counter! > v0.counter!, v.line);
  await c.bus.call('node2', { kind: 'remove', container });
});

test('at most 2 migrations leave one node at once; the third waits in Pending and says why', async () => {
  const gate = unique('gate');
  const containers = [unique('q'), unique('q'), unique('q')];
  const names = containers.map(() => unique('lim'));
  for (const ct of containers) await runWorkload(c, 'node1', ct, 8);
  await armHook(c, 'node1', 'source.beforeTransfer', { action: 'block', release: gate, times: 3 });
  for (const [i, ct] of containers.entries()) await start(names[i]!, ct);
  // Which two are admitted first is the controller's choice (creation times can tie to the
  // millisecond): wait for any two to be held in Transferring, then look at the third.
  let moving: StoredMigration[] = [];
  for (let i = 0; i < 600 && moving.length < 2; i++) {
    const all = await Promise.all(names.map((n) => c.store.get('default', n)));
    moving = all.filter((m): m is StoredMigration => Boolean(m && phases(m).includes('Transferring')));
    if (moving.length < 2) await sleep(50);
  }
  assert.equal(moving.length, 2, 'two migrations reached Transferring');
  await sleep(500);
  const thirdName = names.find((n) => !moving.some((m) => m.metadata.name === n))!;
  const third = (await c.store.get('default', thirdName))!;
  assert.equal(third.status.phase, 'Pending');
  const admitted = third.status.conditions?.find((x) => x.type === 'Admitted');
  assert.equal(admitted?.reason, 'ConcurrencyLimit');
  assert.match(admitted?.message ?? '', /2 migrations are leaving node1 \(limit 2 per node\)/);
  await release(gate);
  for (const n of names)
    assert.equal((await waitForMigration(c, 'default', n, () => undefined)).status.phase, 'Succeeded');
  for (const ct of containers) {
    assert.ok((await verify(c, 'node2', ct)).pass);
    await c.bus.call('node2', { kind: 'remove', container: ct });
  }
});

// Crash safety: for every phase, the controller is SIGKILLed right after it wrote that phase, a new
// one is started, and the migration must still end with the workload running exactly once.
const boundaries = PHASES.filter((p) => p !== 'Pending' && p !== 'RollingBack' && p !== 'Failed');
const controllerPid = path.join(clusterDir(CLUSTER), 'controller.pid');
const marker = `controller/main.ts --cluster ${CLUSTER}`;

for (const phase of boundaries) {
  test(`a controller killed right after writing ${phase} is replaced and the migration completes once`, async () => {
    const container = unique('crash');
    const name = unique('cr');
    await runWorkload(c, 'node1', container, 16);
    const v0 = await verify(c, 'node1', container);
    await c.redis.hset(
      keyspace.controllerHooks(CLUSTER),
      'crashAfterPhase',
      JSON.stringify({ phase, migration: name }),
    );
    await start(name, container);
    for (let i = 0; i < 600 && (await runningPid(controllerPid, marker)); i++) await sleep(50);
    if (await runningPid(controllerPid, marker)) {
      // Say where the migration stands and what the controller did, for a failure seen once in CI.
      const now = await c.store.get('default', name);
      const log = await readFile(path.join(clusterDir(CLUSTER), 'controller.log'), 'utf8').catch(() => '');
      assert.fail(
        `the controller did not crash after writing ${phase}: the migration is ${now?.status.phase} ` +
          `(${now ? phases(now).join(' ') : 'absent'}); the controller's log ends:\n${log.split('\n').slice(-20).join('\n')}`,
      );
    }
    await upTestCluster();
    const m = await waitForMigration(c, 'default', name, () => undefined);
    assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
    // No phase was entered twice, and every step ran as one job, once.
    const seen = phases(m);
    assert.deepEqual(seen, [...new Set(seen)]);
    for (const p of seen) {
      for (const { step, side } of routeOf(m).steps(m, p as Phase)) {
        const node = side === 'target' ? 'node2' : 'node1';
        const job = await c.bus.queue(node).getJob(keyspace.jobId(m.metadata.uid, step));
        assert.equal(job?.attemptsMade, 1, `${step} ran once`);
      }
    }
    const v = await verify(c, 'node2', container);
    assert.ok(v.pass && v.counter! > v0.counter!, v.line);
    assert.ok(!(await list(c, 'node1')).some((x) => x.id === container), 'exactly once: not on the source');
    await c.bus.call('node2', { kind: 'remove', container });
  });
}

test('a controller killed right after writing RollingBack is replaced and the source still comes back', async () => {
  const container = unique('crash');
  const name = unique('crb');
  await runWorkload(c, 'node1', container, 16);
  const v0 = await verify(c, 'node1', container);
  await armHook(c, 'node2', 'target.beforeRestore', {
    action: 'corruptFile',
    file: 'checkpoint/pstree.img',
    migration: name,
  });
  await c.redis.hset(
    keyspace.controllerHooks(CLUSTER),
    'crashAfterPhase',
    JSON.stringify({ phase: 'RollingBack', migration: name }),
  );
  await start(name, container);
  for (let i = 0; i < 600 && (await runningPid(controllerPid, marker)); i++) await sleep(50);
  assert.equal(await runningPid(controllerPid, marker), undefined, 'the controller crashed');
  await upTestCluster();
  const m = await waitForMigration(c, 'default', name, () => undefined);
  assert.equal(m.status.phase, 'Failed');
  assert.match(m.status.failureReason!, /restore on node2 failed: CriuRestoreFailed/);
  assert.deepEqual(phases(m), [...new Set(phases(m))], 'no phase entered twice');
  await sourceIntact(container, v0.counter!);
  await c.bus.call('node1', { kind: 'remove', container });
});
