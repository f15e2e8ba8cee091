// Bare process trees (spec.source.pid), as P.Haul moved them: a process started in node1's network
// namespace moves to node2 and checks itself there; when the restore fails, it comes back on node1
// from the image kept there, with its memory intact; a tree whose TCP connections could not live on
// the target (a loopback peer outside it, the node's own address) is refused before it is frozen.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
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

/**
 * Runs `command` in a node's network namespace, detached (a session leader of its own, as a daemon
 * would be), with the test workload's arguments after it, and waits until the workload is ready.
 */
async function startInNode(node: string, data: string, command: string[]): Promise<number> {
  // nsenter joins the namespace and execs the command, so the PID is the command's.
  const args = [`${FERRY_OPT}/bin/workload`, '--mem-mib', '16', '--interval-ms', '10', '--dir', data];
  const child = spawn('nsenter', [`--net=/run/netns/${netnsName(CLUSTER, node)}`, ...command, ...args], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  for (let i = 0; i < 100 && !(await stat(path.join(data, 'ready')).catch(() => undefined)); i++)
    await new Promise((r) => setTimeout(r, 50));
  return child.pid!;
}

/** Starts the test workload as a plain process in a node's network namespace (no container). */
const startBare = (node: string, data: string): Promise<number> => startInNode(node, data, []);

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

/** A busybox process in a node's network namespace, kept running (its stdin stays open). */
async function startIn(node: string, args: string[]): Promise<ChildProcess> {
  const child = spawn('nsenter', [`--net=/run/netns/${netnsName(CLUSTER, node)}`, '/bin/busybox', ...args], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  await new Promise((r) => setTimeout(r, 300));
  return child;
}

test('a tree with a loopback peer outside it, or a connection on the node’s address, is refused in preflight', async () => {
  // A server outside the tree, listening everywhere; the tree is a client of it.
  const server = await startIn('node1', ['nc', '-ll', '-p', '7101', '-e', '/bin/busybox', 'cat']);
  const viaLoopback = await startIn('node1', ['nc', '127.0.0.1', '7101']);
  const viaNodeAddress = await startIn('node1', ['nc', '10.78.0.11', '7101']);
  try {
    const lo = await migrate(
      c,
      unique('m-lo'),
      { node: 'node1', container: unique('proc'), pid: viaLoopback.pid! },
      'node2',
    );
    assert.equal(lo.status.phase, 'Failed');
    assert.match(
      lo.status.failureReason!,
      /UnsupportedWorkload: .*to 127\.0\.0\.1:7101, whose other end is not in the tree/,
    );
    assert.ok(!phases(lo).includes('Checkpointing'), 'refused before anything was frozen');
    const addr = await migrate(
      c,
      unique('m-addr'),
      { node: 'node1', container: unique('proc'), pid: viaNodeAddress.pid! },
      'node2',
    );
    assert.equal(addr.status.phase, 'Failed');
    assert.match(
      addr.status.failureReason!,
      /has a TCP connection on 10\.78\.0\.11:\d+ .*an address of node1 that the target does not have/,
    );
    // Both still run where they were.
    for (const p of [viaLoopback, viaNodeAddress]) assert.equal(p.exitCode, null);
  } finally {
    for (const p of [viaLoopback, viaNodeAddress, server]) p.kill('SIGKILL');
  }
});

// A parent outside the moved tree that reaps its dead child late (REAP_AFTER seconds after it died,
// or when the file PREFIX.reap appears), as a shell or a busy supervisor would: until then the
// child's PID stays taken by its zombie, on this one kernel both nodes share.
const LATE_PARENT = `
import os, sys, time
reap_after, prefix, cmd = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
pid = os.fork()
if pid == 0:
    os.setsid()  # a daemon's own session, as CRIU needs of a tree's root
    os.execv(cmd[0], cmd)
open(prefix + '.pid', 'w').write(str(pid))
while open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[0] != 'Z':
    time.sleep(0.05)
died = time.time()
while time.time() - died < reap_after and not os.path.exists(prefix + '.reap'):
    time.sleep(0.05)
os.waitpid(pid, 0)
`;

/** The test workload as the child of a parent that reaps late; resolves to the workload's PID. */
async function startUnderLateParent(node: string, data: string, reapAfterS: number): Promise<number> {
  const prefix = path.join(data, 'parent');
  await startInNode(node, data, ['/usr/bin/python3', '-c', LATE_PARENT, String(reapAfterS), prefix]);
  return Number((await readFile(`${prefix}.pid`, 'utf8')).trim());
}

test('a tree whose parent reaps it late moves: the target waits until its PIDs are free', async () => {
  const data = await mkdtemp(path.join(dir, 'late-'));
  const pid = await startUnderLateParent('node1', data, 3);
  assert.match(await verifyBare(pid, data), /^PASS/);
  const m = await migrate(c, unique('m-late'), { node: 'node1', container: unique('proc'), pid }, 'node2');
  assert.equal(m.status.phase, 'Succeeded', m.status.failureReason);
  assert.equal(await netnsOf(pid), await nodeNetns('node2'), 'the same PID runs in node2 now');
  assert.match(await verifyBare(pid, data), /^PASS/);
  process.kill(pid, 'SIGKILL');
});

test('a tree whose PIDs stay taken is refused on the target, kept on the source, and back once they are free', async () => {
  const data = await mkdtemp(path.join(dir, 'never-'));
  const pid = await startUnderLateParent('node1', data, 3600);
  const m = await migrate(c, unique('m-held'), { node: 'node1', container: unique('proc'), pid }, 'node2');
  // The target waited, bounded, and said who holds the PID; the source cannot resume yet either,
  // and the Migration says where the image is and how to restore it.
  assert.equal(m.status.phase, 'Failed');
  assert.match(
    m.status.failureReason!,
    new RegExp(
      `restore on node2 failed: PidsInUse: .*its PIDs are still taken: ${pid} \\(a zombie its parent \\d+ \\(python3\\) has not reaped\\)`,
    ),
  );
  assert.match(
    m.status.failureReason!,
    /rollback incomplete: resumeSource on node1 failed: SourceResumeFailed: .*Its image is kept at \/run\/ferry\/test\/node1\/images\/[0-9a-f-]+\/checkpoint; node1's agent tries again .* criu restore -D /,
  );
  // The parent reaps at last: node1's agent, trying again from its record, brings the tree back.
  await writeFile(path.join(data, 'parent.reap'), '');
  let back = false;
  for (let i = 0; i < 150 && !back; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    back = st !== '' && !/^\d+ \(.*\) [ZX] /.test(st); // running, not the zombie it was
  }
  assert.ok(back, 'the tree runs again on node1');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await netnsOf(pid), await nodeNetns('node1'));
  assert.match(await verifyBare(pid, data), /^PASS/);
  process.kill(pid, 'SIGKILL');
});
