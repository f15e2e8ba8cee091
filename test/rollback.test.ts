// Failures after the freeze: the Migration fails with the cause, the source resumes with its state
// intact, and the target is left clean.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Client } from '../cli/client.ts';
import { nodePaths } from '../lib/paths.ts';
import {
  CLUSTER,
  armHook,
  leftovers,
  list,
  migrate,
  phases,
  runWorkload,
  testCluster,
  unique,
  verify,
} from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

async function expectRolledBack(container: string, name: string, reason: RegExp, counterBefore: number) {
  const m = (await c.store.get('default', name))!;
  assert.equal(m.status.phase, 'Failed');
  assert.match(m.status.failureReason ?? '', reason);
  assert.ok(phases(m).includes('RollingBack'));

  // The source runs on (not frozen), with its memory and file intact, and keeps counting.
  const src = (await list(c, 'node1')).find((x) => x.id === container);
  assert.equal(src?.status, 'running');
  const v = await verify(c, 'node1', container);
  assert.ok(v.pass, v.line);
  assert.ok(v.counter! > counterBefore, `source continued: ${counterBefore} -> ${v.counter}`);

  // The target holds no copy, no bundle and nothing received.
  assert.ok(!(await list(c, 'node2')).some((x) => x.id === container), 'no container on the target');
  assert.ok(
    !existsSync(`${nodePaths(CLUSTER, 'node2').fsRoot}/containers/${container}`),
    'no bundle on the target',
  );
  assert.deepEqual(await leftovers('node2', m.metadata.uid), []);
  assert.deepEqual(await leftovers('node1', m.metadata.uid), []);
}

test('resumes the source when the target restore fails on a corrupted image', async () => {
  const container = unique('victim');
  const name = unique('corrupt');
  await runWorkload(c, 'node1', container, 16);
  const v0 = await verify(c, 'node1', container);
  await armHook(c, 'node2', 'target.beforeRestore', {
    action: 'corruptFile',
    file: 'checkpoint/pstree.img',
    migration: name,
  });
  await migrate(c, name, { node: 'node1', container }, 'node2');
  await expectRolledBack(container, name, /restore on node2 failed: CriuRestoreFailed/, v0.counter!);
  await c.bus.call('node1', { kind: 'remove', container });
});

test('resumes the source when the transfer fails after the freeze', async () => {
  const container = unique('victim');
  const name = unique('xfer');
  await runWorkload(c, 'node1', container, 16);
  const v0 = await verify(c, 'node1', container);
  await armHook(c, 'node1', 'source.beforeTransfer', {
    action: 'fail',
    message: 'link cut',
    migration: name,
    times: 3,
  });
  await migrate(c, name, { node: 'node1', container }, 'node2');
  await expectRolledBack(container, name, /transfer on node1 failed: .*link cut/, v0.counter!);
  await c.bus.call('node1', { kind: 'remove', container });
});
