// The memory strategies on the real local cluster: StopAndCopy streams pages through the agents'
// SSH connection while CRIU dumps; PostCopy restores at once and pulls pages from the source, or,
// where CRIU's lazy pages fail (this project's machines, see agent/criu/lazy-probe.ts), rolls back
// to the source with nothing lost; Auto records what it measured and chose.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import type { Client } from '../cli/client.ts';
import { probeLazyPages } from '../agent/criu/lazy-probe.ts';
import { FERRY_OPT } from '../lib/paths.ts';
import { expectRolledBack, list, migrate, runWorkload, testCluster, unique, verify } from './helpers.ts';

let c: Client;
before(async () => (c = await testCluster()));
after(async () => c.close());

const MiB = 2 ** 20;

test('StopAndCopy streams the memory to the target while CRIU dumps', async () => {
  const container = unique('sc');
  await runWorkload(c, 'node1', container, 64);
  const m = await migrate(c, unique('m-sc'), { node: 'node1', container }, 'node2', {
    strategy: { mode: 'StopAndCopy' },
  });
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const s = m.status.migrationState!;
  assert.equal(s.mode, 'StopAndCopy');
  // The pages crossed during the dump (Checkpointing), not in a separate copy afterwards.
  assert.ok((s.bytesDuringFreeze ?? 0) >= 64 * MiB, `bytes during freeze: ${s.bytesDuringFreeze}`);
  assert.ok((s.linkBytesPerSecond ?? 0) > 0, 'preflight measured the link');
  const v = await verify(c, 'node2', container);
  assert.ok(v.pass, v.line);
  assert.ok(!(await list(c, 'node1')).some((x) => x.id === container), 'runs once: gone from the source');
});

test('PostCopy restores on the target and pulls the pages, or rolls back to the source where lazy pages fail', async () => {
  // The agents of the test cluster offer PostCopy even when their self-test fails (fault hooks on),
  // so this runs the real path; what to expect depends on whether CRIU's lazy pages work here.
  await mkdir('/tmp/ferry-probe', { recursive: true, mode: 0o700 });
  const problem = await probeLazyPages(`${FERRY_OPT}/bin/criu`, '/tmp/ferry-probe');
  const container = unique('pc');
  await runWorkload(c, 'node1', container, 32);
  const v0 = await verify(c, 'node1', container);
  const name = unique('m-pc');
  const m = await migrate(c, name, { node: 'node1', container }, 'node2', { strategy: { mode: 'PostCopy' } });
  if (problem) {
    // A failure before the target runs: CRIU on the source gives the workload back where it was.
    await expectRolledBack(c, container, name, /restore on node2 failed: CriuRestoreFailed/, v0.counter!);
    return;
  }
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.equal(m.status.migrationState?.mode, 'PostCopy');
  const v = await verify(c, 'node2', container);
  assert.ok(v.pass, v.line);
});

test('Auto records the link rate it measured and why it chose its mode', async () => {
  const container = unique('auto');
  await runWorkload(c, 'node1', container, 16);
  const m = await migrate(c, unique('m-auto'), { node: 'node1', container }, 'node2', {
    strategy: { mode: 'Auto', maxDowntime: '1h' },
  });
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.equal(m.status.migrationState?.mode, 'StopAndCopy');
  assert.match(
    m.status.migrationState?.modeReason ?? '',
    /^chosen by Auto: \d+ MiB over a \d+ MiB\/s link: StopAndCopy would freeze about \d+ ms, maxDowntime 1h$/,
  );
  assert.ok((await verify(c, 'node2', container)).pass);
});

test('with compression: Zstd the filesystem goes compressed and the workload arrives whole', async () => {
  const container = unique('zstd');
  await runWorkload(c, 'node1', container, 16);
  const m = await migrate(c, unique('m-zstd'), { node: 'node1', container }, 'node2', {
    strategy: { mode: 'StopAndCopy', compression: 'Zstd' },
  });
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  const pre = await c.bus.queue('node1').getJob(`${m.metadata.uid}.preflightSource`);
  const rootfsBytes = (pre?.returnvalue as { rootfsBytes: number }).rootfsBytes;
  const sent = m.status.migrationState?.bytesBeforeFreeze ?? 0;
  assert.ok(sent < rootfsBytes * 0.8, `sent ${sent} bytes of a ${rootfsBytes}-byte filesystem`);
  assert.ok((await verify(c, 'node2', container)).pass);
});
