// Failures after the freeze: the Migration fails with the cause, the source resumes with its state
// intact, and the target is left clean.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '../cli/client.ts';
import type { HookInput, HookPoint } from '../agent/fault-hooks.ts';
import { armHook, expectRolledBack, migrate, runWorkload, testCluster, unique, verify } from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

interface Case {
  title: string;
  node: string;
  point: HookPoint;
  action: HookInput;
  reason: RegExp;
}

const cases: Case[] = [
  {
    title: 'resumes the source when the target restore fails on a corrupted image',
    node: 'node2',
    point: 'target.beforeRestore',
    action: { action: 'corruptFile', file: 'checkpoint/pstree.img' },
    // CRIU's words, and where its log is kept: the rollback removed the migration's own folders.
    reason:
      /restore on node2 failed: CriuRestoreFailed: CRIU says: .*\(CRIU's log: \/var\/lib\/ferry\/test\/nodes\/node2\/fs\/logs\/[0-9a-f-]+-restore\.log\)/,
  },
  {
    title: 'resumes the source when the transfer fails after the freeze',
    node: 'node1',
    point: 'source.beforeTransfer',
    // More failures than the job has attempts, so the retries cannot save it.
    action: { action: 'fail', message: 'link cut', times: 3 },
    reason: /transfer on node1 failed: .*link cut/,
  },
  {
    // A frozen step that hangs (held here, as a hung CRIU or link would hold it) is noticed while
    // it hangs: its agent stops it at its deadline and the source runs again.
    title: 'a frozen step that hangs is stopped at its deadline and the source resumes',
    node: 'node1',
    point: 'source.beforeTransfer',
    action: { action: 'block', release: unique('never') },
    reason:
      /transfer on node1 failed: StepDeadline: transfer ran past its deadline of 10s while the source was frozen; stopped it/,
  },
];

for (const k of cases) {
  test(k.title, async () => {
    const container = unique('victim');
    const name = unique('rb');
    await runWorkload(c, 'node1', container, 16);
    const v0 = await verify(c, 'node1', container);
    await armHook(c, k.node, k.point, { ...k.action, migration: name });
    await migrate(c, name, { node: 'node1', container }, 'node2');
    await expectRolledBack(c, container, name, k.reason, v0.counter!);
    await c.bus.call('node1', { kind: 'remove', container });
  });
}

test('a link that breaks while the dump streams is retried and the migration succeeds', async () => {
  const container = unique('resume');
  const name = unique('cut');
  await runWorkload(c, 'node1', container, 32);
  const v0 = await verify(c, 'node1', container);
  // Cut the SSH connection once 8 MiB of pages have gone; the source stays frozen, and the
  // checkpoint job's retry dumps again into a fresh page server.
  await armHook(c, 'node1', 'source.duringTransfer', {
    action: 'cut',
    afterBytes: 8 * 2 ** 20,
    migration: name,
  });
  const m = await migrate(c, name, { node: 'node1', container }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const job = await c.bus.queue('node1').getJob(`${m.metadata.uid}.checkpoint`);
  assert.equal(job?.attemptsMade, 2, 'one broken attempt, one retried');
  const v = await verify(c, 'node2', container);
  assert.ok(v.pass && v.counter! > v0.counter!, v.line);
  await c.bus.call('node2', { kind: 'remove', container });
});
