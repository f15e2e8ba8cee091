// Bare process trees (spec.source.pid), as P.Haul moved them: a process started in node1's network
// namespace moves to node2 and checks itself there; when the restore fails, it comes back on node1
// from the image kept there, with its memory intact.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '../cli/client.ts';
import { netnsName } from '../cluster/netns.ts';
import { FERRY_OPT } from '../lib/paths.ts';
import { CLUSTER, armHook, migrate, phases, testCluster, unique } from './helpers.ts';

let c: Client;
let dir: string;
before(async () => {
  c = await testCluster();
  dir = await mkdtemp('/tmp/ferry-bare-');
});
after(async () => {
  await c.close();
  await rm(dir, { recursive: true, force: true });
});

/** Starts the test workload as a plain process in a node's network namespace (no container). */
async function startBare(node: string, data: string): Promise<number> {
  // nsenter joins the namespace and execs the workload, so the PID is the workload's; detached
  // makes it a session leader of its own, as a daemon would be.
  const child = spawn(
    'nsenter',
    [`--net=/run/netns/${netnsName(CLUSTER, node)}`, `${FERRY_OPT}/bin/workload`, '--mem-mib', '16'].concat([
      '--interval-ms',
      '10',
      '--dir',
      data,
    ]),
    { detached: true, stdio: 'ignore' },
  );
  child.unref();
  for (let i = 0; i < 100 && !(await stat(path.join(data, 'ready')).catch(() => undefined)); i++)
    await new Promise((r) => setTimeout(r, 50));
  return child.pid!;
}

/** Asks the process to check its memory (SIGUSR1) and returns its verdict line. */
async function verifyBare(pid: number, data: string): Promise<string> {
  const file = path.join(data, 'verify.txt');
  await rm(file, { force: true });
  process.kill(pid, 'SIGUSR1');
  for (let i = 0; i < 100; i++) {
    const line = await readFile(file, 'utf8').catch(() => '');
    if (line.endsWith('\n')) return line.trim();
    await new Promise((r) => setTimeout(r, 50));
  }
  return 'no answer';
}

const netnsOf = (pid: number) => readlink(`/proc/${pid}/ns/net`);
const nodeNetns = async (node: string) =>
  `net:[${(await stat(`/run/netns/${netnsName(CLUSTER, node)}`)).ino}]`;

test('a bare process tree moves by PID to the other node and checks itself there', async () => {
  const data = await mkdtemp(path.join(dir, 'move-'));
  const pid = await startBare('node1', data);
  assert.match(await verifyBare(pid, data), /^PASS/);
  const m = await migrate(c, unique('m-bare'), { node: 'node1', container: unique('proc'), pid }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.equal(m.status.migrationState?.mode, 'StopAndCopy');
  const job = await c.bus.queue('node2').getJob(`${m.metadata.uid}.restore`);
  const moved = (job?.returnvalue as { pid: number }).pid;
  assert.equal(await netnsOf(moved), await nodeNetns('node2'), 'runs in node2 now');
  assert.match(await verifyBare(moved, data), /^PASS/);
  process.kill(moved, 'SIGKILL');
});

test('a bare process whose restore fails comes back on its node from the kept image', async () => {
  const data = await mkdtemp(path.join(dir, 'back-'));
  const pid = await startBare('node1', data);
  const name = unique('m-bare-rb');
  await armHook(c, 'node2', 'target.beforeRestore', {
    action: 'corruptFile',
    file: 'checkpoint/pstree.img',
    migration: name,
  });
  const m = await migrate(c, name, { node: 'node1', container: unique('proc'), pid }, 'node2');
  assert.equal(m.status.phase, 'Failed');
  assert.ok(phases(m).includes('RollingBack'));
  // Same PID, back in node1's namespace, memory intact.
  assert.equal(await netnsOf(pid), await nodeNetns('node1'));
  assert.match(await verifyBare(pid, data), /^PASS/);
  process.kill(pid, 'SIGKILL');
});
