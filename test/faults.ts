// The faults of the fault matrix (test/fault-matrix.test.ts) and where they strike. Each is real:
// processes are SIGKILLed and started again, or paused (SIGSTOP) past their lease and let go on,
// Redis is shut down and restarted, or wiped (FLUSHALL), the target's veth goes down, its
// filesystem fills up, a byte is flipped on the wire by a named hook, the target node dies with its
// containers (and an operator fences it); and an operator's second Migration of the same workload.
// Injection points are named hooks in the agents (agent/fault-hooks.ts).
import { readFile, rm } from 'node:fs/promises';
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HookPoint } from '../agent/fault-hooks.ts';
import type { Client } from '../cli/client.ts';
import { vethName } from '../cluster/netns.ts';
import { exec, run } from '../lib/exec.ts';
import { fenceNode, unfenceNode } from '../lib/fences.ts';
import { clusterDir, nodePaths } from '../lib/paths.ts';
import { armHook, CLUSTER, until, upTestCluster } from './helpers.ts';
import assert from 'node:assert/strict';
import { API_VERSION } from '../api/v1alpha1/migration.ts';
import { waitForMigration } from '../cli/watch.ts';

/** Where each phase is held while its fault strikes: a hook on the node that runs its step. */
export const PHASE_POINTS = {
  Preflight: { node: 'node1', point: 'source.preflight' },
  Syncing: { node: 'node1', point: 'source.beforeSync' },
  Checkpointing: { node: 'node1', point: 'source.afterCheckpoint' },
  Transferring: { node: 'node1', point: 'source.beforeTransfer' },
  Restoring: { node: 'node2', point: 'target.beforeRestore' },
  Verifying: { node: 'node2', point: 'target.beforeVerify' },
  CleaningUp: { node: 'node1', point: 'source.beforeCleanup' },
} as const satisfies Record<string, { node: string; point: HookPoint }>;
export type MatrixPhase = keyof typeof PHASE_POINTS;

export interface FaultEnv {
  c: Client;
  name: string;
  phase: MatrixPhase;
  /** Lets the held step go on. */
  release(): Promise<void>;
}

export interface Fault {
  name: string;
  /** The store loses the Migration: the cell looks for the one copy itself (the agents settle it). */
  wipesStore?: boolean;
  /** What a Failed migration's reason must say about this fault (its cause, in its own words). */
  reason: RegExp;
  /** Phases where the fault cannot strike the migration, with why (the table says so). */
  notApplicable?: Partial<Record<MatrixPhase, string>>;
  /** Strikes while the phase is held, and lets it go on. */
  strike(env: FaultEnv): Promise<void>;
  /** Undone after the migration ended: the link back up, the disk emptied, the node back. */
  heal?(env: FaultEnv): Promise<void>;
}

async function pidOf(file: string): Promise<number> {
  return Number((await readFile(file, 'utf8')).trim());
}

async function killAgent(node: string): Promise<void> {
  process.kill(await pidOf(nodePaths(CLUSTER, node).pidFile), 'SIGKILL');
  await sleep(200);
}

/** Longer than the lease (6 s) and the controller's grace (4 s) together: the node is taken as silent. */
const PAUSE_MS = 14_000;

/**
 * The agent stops (SIGSTOP) for PAUSE_MS and goes on (SIGCONT). When it holds the phase's step, the
 * step is let go during the pause (it goes on as soon as the agent runs again); when the other
 * node holds it, the step is let go first and runs while this agent is paused.
 */
async function pauseAgent(node: string, env: FaultEnv): Promise<void> {
  const pid = await pidOf(nodePaths(CLUSTER, node).pidFile);
  const holdsStep = PHASE_POINTS[env.phase].node === node;
  if (!holdsStep) await env.release();
  process.kill(pid, 'SIGSTOP');
  try {
    await sleep(PAUSE_MS);
    if (holdsStep) await env.release();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

/** Until the Migration says it waits for a silent node, or ended (or `ms` passed). */
async function waitsFor(env: FaultEnv, node: string, ms: number): Promise<void> {
  await until(async () => {
    const m = await env.c.store.get('default', env.name);
    if (!m || m.status.phase === 'Failed' || m.status.phase === 'Succeeded') return true;
    return m.status.warnings?.some((w) => w.startsWith(`node ${node} went silent`)) ?? false;
  }, ms);
}

const link = (node: string, state: 'up' | 'down') =>
  run('ip', ['link', 'set', vethName(CLUSTER, Number(node.slice(4))), state]);

const FILLERS = (node: string) => [
  path.join(nodePaths(CLUSTER, node).fsRoot, 'fault-filler'),
  path.join(nodePaths(CLUSTER, node).imagesDir, 'fault-filler'),
];

/** What a node's test runtime still runs, as a dead node would not. */
async function killContainers(node: string): Promise<void> {
  const root = nodePaths(CLUSTER, node).runcRoot;
  const listed = await exec('runc', ['--root', root, 'list', '--quiet']);
  for (const id of listed.stdout.split('\n').filter(Boolean)) {
    await exec('runc', ['--root', root, 'kill', id, 'KILL']);
    await exec('runc', ['--root', root, 'delete', '--force', id]);
  }
}

export const FAULTS: Fault[] = [
  {
    name: 'source agent killed',
    reason: /stalled|node1/,
    async strike(env) {
      await killAgent('node1');
      await upTestCluster();
      await env.release();
    },
  },
  {
    name: 'target agent killed',
    reason: /stalled|node2/,
    async strike(env) {
      await killAgent('node2');
      await upTestCluster();
      await env.release();
    },
  },
  {
    name: 'controller killed',
    reason: /./,
    async strike(env) {
      process.kill(await pidOf(path.join(clusterDir(CLUSTER), 'controller.pid')), 'SIGKILL');
      await sleep(200);
      await upTestCluster();
      await env.release();
    },
  },
  {
    name: 'Redis restarted',
    reason: /./,
    async strike(env) {
      // A clean shutdown writes its append-only file; the restart reads it back.
      await exec('redis-cli', ['-s', path.join(clusterDir(CLUSTER), 'redis.sock'), 'shutdown']);
      await sleep(300);
      await upTestCluster();
      await env.release();
    },
  },
  {
    name: 'link down for 2 s',
    reason: /TransferFailed|connect|timed out|ECONN|closed/i,
    async strike(env) {
      await env.release();
      await sleep(100);
      await link('node2', 'down');
      await sleep(2000);
      await link('node2', 'up');
    },
  },
  {
    name: 'link cut for good',
    // A frozen step waiting on the dead link is stopped at its deadline, if the link's own
    // timeouts do not end it first.
    reason: /TransferFailed|connect|timed out|ECONN|closed|StepDeadline/i,
    async strike(env) {
      await env.release();
      await sleep(100);
      await link('node2', 'down');
    },
    async heal() {
      await link('node2', 'up');
    },
  },
  {
    name: 'target filesystem full',
    reason: /space|ENOSPC|InsufficientSpace/i,
    async strike(env) {
      // Both of the target's filesystems: its btrfs (snapshots) and its image tmpfs (pages, images).
      for (const file of FILLERS('node2')) {
        const st = await statfs(path.dirname(file));
        await run('fallocate', ['-l', String(st.bavail * st.bsize), file]).catch(() => undefined);
      }
      await env.release();
    },
    async heal() {
      for (const file of FILLERS('node2')) await rm(file, { force: true });
      await exec('btrfs', ['filesystem', 'sync', nodePaths(CLUSTER, 'node2').fsRoot]);
    },
  },
  {
    name: 'a byte flipped in transit',
    reason: /IntegrityError|sha256|checksum/i,
    notApplicable: {
      Preflight: 'no image moves yet (the link probe keeps nothing)',
      Checkpointing:
        "pages stream through CRIU's page-server protocol inside the SSH channel, whose MAC (AES-GCM) refuses a flipped byte; ferry's own checksums cover files and btrfs streams",
      Restoring: 'nothing moves between the nodes after the transfer',
      Verifying: 'nothing moves between the nodes after the transfer',
      CleaningUp: 'nothing moves between the nodes after the transfer',
    },
    async strike(env) {
      // The held step takes this hook as it opens its session: the first data frame goes out flipped.
      const point = env.phase === 'Syncing' ? 'source.duringSync' : 'source.duringTransfer';
      await armHook(env.c, 'node1', point, { action: 'flip', afterBytes: 0, migration: env.name });
      await env.release();
    },
  },
  {
    name: 'target node removed',
    reason: /NodeNotFound: node node2 is (gone|fenced)|ssh to node2: connect/,
    notApplicable: {
      CleaningUp:
        'the workload already runs on the target, verified: a node that dies then takes it with it, migration or not',
    },
    async strike(env) {
      await killAgent('node2');
      await killContainers('node2');
      await env.release();
      // After the hand-over ferry waits for a silent target rather than risk a second copy: the
      // operator, having seen the node is dead, fences it, and the source resumes.
      if (env.phase === 'Restoring' || env.phase === 'Verifying') {
        await waitsFor(env, 'node2', 30_000);
        await fenceNode(env.c.redis, CLUSTER, {
          node: 'node2',
          reason: 'test: node removed',
          time: new Date().toISOString(),
        });
      }
    },
    async heal(env) {
      await upTestCluster(); // the node returns; its agent settles what the migration left there
      await unfenceNode(env.c.redis, CLUSTER, 'node2');
    },
  },
  {
    name: 'source agent paused',
    // Its own silence, or a frozen step of the target's that waited on it past its deadline.
    reason: /node1|StepDeadline/,
    strike: (env) => pauseAgent('node1', env),
  },
  {
    name: 'target agent paused',
    reason: /node2|StepDeadline/,
    strike: (env) => pauseAgent('node2', env),
  },
  {
    // The cluster's Redis loses everything: the Migration, its jobs, its marks. The agents settle
    // from their own records: a source that never handed over thaws; after the hand-over the
    // target keeps a copy that runs (and the source's goes) or drops one that does not.
    name: 'Redis wiped',
    reason: /./,
    wipesStore: true,
    async strike(env) {
      await env.c.redis.flushall();
      await env.release();
    },
  },
  {
    // Not a failure of a part: an operator's second Migration of the same workload while the first
    // runs. It must be refused at admission, naming the first, and change nothing of the first.
    name: 'a second Migration of the workload',
    reason: /./,
    async strike(env) {
      const first = await env.c.store.get('default', env.name);
      const second = `${env.name}-again`;
      await env.c.store.create({
        apiVersion: API_VERSION,
        kind: 'Migration',
        metadata: { name: second, namespace: 'default' },
        spec: {
          source: { node: 'node1', container: first!.spec.source.container },
          target: { node: 'node2' },
        },
      });
      const m = await waitForMigration(env.c, 'default', second, () => undefined, 60_000);
      assert.equal(m.status.phase, 'Failed');
      assert.match(
        m.status.failureReason ?? '',
        new RegExp(`^WorkloadBusy: .* is being moved by Migration default/${env.name}`),
      );
      assert.deepEqual(
        m.status.phaseTransitionTimestamps.map((t) => t.phase),
        ['Pending', 'Failed'],
        'refused before anything ran',
      );
      await env.c.store.delete('default', second);
      await env.release();
    },
  },
];
