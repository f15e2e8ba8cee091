// Fencing a node that is in fact alive (an operator's mistake, or a node that came back): ferry acts
// around it at once, and the fenced agent, still running, takes no job and removes the copy the
// controller gave up on, from its own record (docs/fencing.md).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '../cli/client.ts';
import { exec } from '../lib/exec.ts';
import { fenceNode, unfenceNode } from '../lib/fences.ts';
import { keyspace } from '../lib/keyspace.ts';
import { nodePaths } from '../lib/paths.ts';
import {
  CLUSTER,
  armHook,
  leftovers,
  list,
  migrate,
  runWorkload,
  testCluster,
  unique,
  verify,
  until,
} from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => {
  await unfenceNode(c.redis, CLUSTER, 'node2');
  await c.close();
});

/** The node's containers as runc sees them (the agent of a fenced node answers no job). */
async function runcIds(node: string): Promise<string[]> {
  const r = await exec('runc', ['--root', nodePaths(CLUSTER, node).runcRoot, 'list', '--quiet']);
  return r.stdout.split('\n').filter(Boolean);
}

test('a fenced target is rolled back around at once, and its agent removes its own copy', async () => {
  const container = unique('fence');
  const name = unique('m-fence');
  const release = unique('release');
  await runWorkload(c, 'node1', container, 16);
  const before = await verify(c, 'node1', container);
  // Held in Verifying: the copy runs on node2, the source is frozen on node1.
  await armHook(c, 'node2', 'target.beforeVerify', { action: 'block', release, migration: name });
  const done = migrate(c, name, { node: 'node1', container }, 'node2', { strategy: { mode: 'StopAndCopy' } });
  assert.ok(
    await until(
      async () => !(await c.redis.hexists(keyspace.agentHooks(CLUSTER, 'node2'), 'target.beforeVerify')),
      60_000,
    ),
    'Verifying reached',
  );
  await fenceNode(c.redis, CLUSTER, {
    node: 'node2',
    reason: 'test: fenced',
    time: new Date().toISOString(),
  });
  // The controller acts around it at once, its step still held there; then the step lets go.
  assert.ok(
    await until(async () => (await c.store.get('default', name))?.status.phase !== 'Verifying', 30_000),
    'rolled back around the fenced node',
  );
  await c.redis.set(keyspace.hookRelease(CLUSTER, release), '1');
  const m = await done;
  assert.equal(m.status.phase, 'Failed');
  assert.match(
    m.status.failureReason ?? '',
    /verifyTarget on node2 failed: NodeNotFound: node node2 is fenced/,
  );
  assert.ok(m.status.warnings?.some((w) => /rollbackTarget skipped: node node2 is fenced/.test(w)));
  // The source runs again (released as targetFenced), its state intact.
  const src = (await list(c, 'node1')).find((x) => x.id === container);
  assert.equal(src?.status, 'running');
  const after = await verify(c, 'node1', container);
  assert.ok(after.pass && after.counter! > before.counter!, after.line);
  // node2's agent, fenced but alive, removes the copy from its record, and takes no job.
  assert.ok(
    await until(async () => !(await runcIds('node2')).includes(container), 20_000),
    'copy removed on node2',
  );
  assert.ok(
    await until(async () => (await leftovers('node2', m.metadata.uid)).length === 0, 20_000),
    'files removed',
  );
  await assert.rejects(
    c.bus.call('node2', { kind: 'list' }),
    /list on node2: node2 is fenced \(ferry node unfence node2 lets it act again\)/,
  );
  await unfenceNode(c.redis, CLUSTER, 'node2');
  assert.ok(await until(async () => (await list(c, 'node2').catch(() => undefined)) !== undefined, 10_000));
  await c.redis.del(keyspace.hookRelease(CLUSTER, release));
  await c.bus.call('node1', { kind: 'remove', container });
});
