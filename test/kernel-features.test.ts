// The kernel feature list, each one a test: one container holds every object of the 2009
// checkpoint/restart list at once (workload/features.c), checks each before the move, is migrated
// between two local nodes, and checks each again there. Every feature is its own test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import type { Client } from '../cli/client.ts';
import { list, migrate, testCluster, unique } from './helpers.ts';

const FEATURES = [
  'pipe',
  'fifo',
  'unix-stream',
  'unix-dgram',
  'unix-seqpacket',
  'eventfd',
  'timerfd',
  'signalfd',
  'inotify',
  'epoll',
  'flock',
  'posix-lock',
  'unlinked-file',
  'sysv-shm',
  'sysv-sem',
  'sysv-msg',
  'memfd',
  'shared-anon-mapping',
  'threads',
  'session',
  'shared-fds',
  'cpu-affinity',
  'numa-policy',
  'posix-timer',
  'devices',
  'tcp-established',
  'tcp-live',
  'udp',
  'own-mount',
  'hugetlb',
  'remap-file-pages',
];

const HUGEPAGES = '/proc/sys/vm/nr_hugepages';
let hugePagesBefore = '0';
let c: Client;
const container = unique('features');
let beforeMove: Record<string, string> = {};
let afterMove: Record<string, string> = {};
let warnings: string[] = [];
let phase = '';
let reason = '';

before(async () => {
  // Offer a few huge pages if the kernel has none reserved (root can; the hugetlb test skips otherwise).
  hugePagesBefore = (await readFile(HUGEPAGES, 'utf8').catch(() => '0')).trim();
  if (Number(hugePagesBefore) < 2) await writeFile(HUGEPAGES, '8').catch(() => undefined);
  c = await testCluster();
  await c.bus.call('node1', { kind: 'run', container, program: 'features', memoryMiB: 1 }, 120_000);
  beforeMove = await c.bus.call('node1', { kind: 'verifyFeatures', container });
  const m = await migrate(c, unique('feat'), { node: 'node1', container }, 'node2');
  phase = m.status.phase;
  reason = m.status.failureReason ?? '';
  warnings = m.status.warnings ?? [];
  const where = phase === 'Succeeded' ? 'node2' : 'node1';
  afterMove = await c.bus.call(where, { kind: 'verifyFeatures', container });
});
after(async () => {
  await writeFile(HUGEPAGES, hugePagesBefore).catch(() => undefined); // leave the host as found
  for (const node of ['node1', 'node2'])
    if ((await list(c, node)).some((x) => x.id === container))
      await c.bus.call(node, { kind: 'remove', container });
  await c.close();
});

test('the feature workload migrates', () => {
  assert.equal(phase, 'Succeeded', reason);
});

describe('after a move between nodes', () => {
  for (const f of FEATURES) {
    test(f, (t) => {
      if (afterMove[f]?.startsWith('SKIP')) return t.skip(afterMove[f]);
      if (f === 'numa-policy' && afterMove[f] !== 'PASS') {
        // CRIU 4.2 does not carry memory policies and no process can set another's: the loss is
        // foreseen in preflight and stated on the Migration, never silent.
        assert.match(warnings.join('\n'), /NUMA memory policies are not carried by CRIU.*prefer:0/);
        return t.todo(`known loss, warned in status: ${afterMove[f]}`);
      }
      assert.equal(beforeMove[f], 'PASS', `before the move: ${beforeMove[f]}`);
      assert.equal(afterMove[f], 'PASS', `after the move: ${afterMove[f]}`);
    });
  }
});
